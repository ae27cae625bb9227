"""EAC's training views as the official noisy-label training builds them: x1 = erase(x), never
flipped at random unless asked (`flip`), Gaussian pixel noise only when asked."""

import torch

from methods import build_method
from methods.backbones import build_backbone
from methods.base import Batch
from methods.eac import GAUSSIAN_STD


class RecordingAugment:
    """An Augment that records which augmentations a method asked for, and applies none."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def random_hflip(self, x):
        self.calls.append(("hflip",))
        return x

    def random_erase(self, x):
        self.calls.append(("erase",))
        return x

    def pixel_noise(self, x, std, p):
        self.calls.append(("noise", std, p))
        return x

    def permutation(self, n, device):
        return torch.arange(n, device=device)


def views_asked(**options) -> list[tuple]:
    eac = build_method("eac", build_backbone("resnet-small", 1), 3, **options)
    batch = Batch(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 0]), torch.arange(4), 0)
    aug = RecordingAugment()
    eac.training_step(batch, aug)
    return aug.calls


def test_x1_is_not_flipped_at_random_by_default():
    assert views_asked() == [("erase",)]  # x2 = hflip(x1): a deterministic mirror, no draw
    assert views_asked(erasure="independent") == [("erase",), ("erase",)]


def test_flip_and_gaussian_noise_are_options():
    assert views_asked(flip=True) == [("hflip",), ("erase",)]
    assert views_asked(gaussian_noise=True) == [("noise", GAUSSIAN_STD, 0.5), ("erase",)]
    assert GAUSSIAN_STD**2 == 30
