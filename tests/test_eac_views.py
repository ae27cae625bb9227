"""The training views the methods ask for, as their official code builds them. EAC's noisy-label
training: x1 = erase(x), never flipped at random unless asked (`flip`), Gaussian pixel noise only
when asked. SCN and RUL: a mirror or Gaussian noise on 1/4 of images each, then erasing."""

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

    def flip_or_noise(self, x, std):
        self.calls.append(("flip_or_noise", std))
        return x

    def permutation(self, n, device):
        return torch.arange(n, device=device)


def views_asked(method: str = "eac", **options) -> list[tuple]:
    model = build_method(method, build_backbone("resnet-small", 1), 3, **options)
    batch = Batch(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 0]), torch.arange(4), 0)
    aug = RecordingAugment()
    model.train()
    model.training_step(batch, aug)
    return aug.calls


def test_x1_is_not_flipped_at_random_by_default():
    assert views_asked() == [("erase",)]  # x2 = hflip(x1): a deterministic mirror, no draw
    assert views_asked(erasure="independent") == [("erase",), ("erase",)]


def test_flip_and_gaussian_noise_are_options():
    assert views_asked(flip=True) == [("hflip",), ("erase",)]
    assert views_asked(gaussian_noise=True) == [("noise", GAUSSIAN_STD, 0.5), ("erase",)]
    assert GAUSSIAN_STD**2 == 30


def test_scn_and_rul_view_is_their_official_basic_augmentation_then_erasing():
    for method in ("scn", "rul"):
        assert views_asked(method) == [("flip_or_noise", GAUSSIAN_STD), ("erase",)]
        assert views_asked(method, view="flip") == [("hflip",), ("erase",)]
