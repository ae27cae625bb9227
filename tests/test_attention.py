"""Flip attention of a trained model (`auditor.training.attention`) against values by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from auditor.training.attention import flip_attention
from auditor.training.augment import Normalizer
from methods.base import Method


class Positional(nn.Module):
    """A 'backbone' that weighs the two pixel columns 1 and 3: not mirror-equivariant."""

    out_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tensor([1.0, 3.0])


class Probe(Method):
    name = "probe"


def test_flip_attention_by_hand():
    probe = Probe(Positional(), 2)
    with torch.no_grad():
        probe.fc.weight.copy_(torch.tensor([[1.0], [2.0]]))
    # one image, one channel, 1 x 2 pixels (a, b) = (0, 1) after normalisation
    pixels = torch.tensor([[[[0, 255]]], [[[0, 255]]]], dtype=torch.uint8)
    out = flip_attention(probe, pixels, torch.tensor([0, 1]), Normalizer((0.0,), (1.0,)), "cpu")
    # CAM_k(x) = w_k (a, 3b); mirror (b, a) -> w_k (b, 3a), flipped back w_k (3a, b);
    # difference w_k (-2a, 2b); mean of its square over the 2 positions: 2 w_k^2 (a^2 + b^2) = 2 w_k^2
    assert out["flip_attention"] == pytest.approx([5.0, 5.0])  # mean over k of 2 w_k^2: (2 + 8) / 2
    assert out["flip_attention_given"] == pytest.approx([2.0, 8.0])  # the given class's alone
    assert all(v.dtype == np.float32 for v in out.values())


def test_a_method_without_cams_has_no_flip_attention():
    class Narrow(Probe):
        def cams(self, fmap):
            return None

    out = flip_attention(Narrow(Positional(), 2), torch.zeros(2, 1, 1, 2, dtype=torch.uint8),
                         torch.tensor([0, 1]), Normalizer((0.0,), (1.0,)), "cpu")  # fmt: skip
    assert out == {}
