"""`train(on_epoch=...)` reads the model after every epoch without changing the training: a hook
that draws from the global random state (RUL's dropout draws from it too) leaves every signal
and the final model as they are without it."""

import numpy as np
import torch

from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig, train
from methods import build_method
from methods.backbones import build_backbone


def train_rul(hook) -> tuple[dict, np.ndarray]:
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (24, 1, 16, 16), dtype=torch.uint8)
    labels = torch.arange(24) % 3
    method = build_method("rul", build_backbone("resnet-small", 1), 3)
    result = train(
        method,
        pixels,
        labels,
        pixels[:6],
        labels[:6],
        Normalizer.fit(pixels),
        TrainConfig(epochs=3, batch_size=8),
        on_epoch=hook,
    )
    return result.signals, result.final_probs


def test_a_hook_sees_every_epoch_and_changes_nothing():
    seen = []

    def hook(epoch, method, signals):
        seen.append((epoch, signals["loss"].shape, method.training))
        torch.randn(1000)  # a draw from the global random state

    hooked, hooked_probs = train_rul(hook)
    plain, plain_probs = train_rul(None)
    assert seen == [(0, (1, 24), False), (1, (2, 24), False), (2, (3, 24), False)]
    for name in plain:
        assert np.array_equal(hooked[name], plain[name]), name
    assert np.array_equal(hooked_probs, plain_probs)
