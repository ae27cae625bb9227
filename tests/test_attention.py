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
    # CAM_y(x) = w_y (a, 3b) = w_y (0, 3); the mirror (b, a) gives w_y (b, 3a), flipped back
    # w_y (3a, b) = w_y (0, 1); (A - B)^2 sums to 4 w_y^2, A^2 + B^2 to 10 w_y^2: 0.4 for both
    # classes, whatever the scale w_y of the map
    assert out == pytest.approx([0.4, 0.4])
    assert out.dtype == np.float32


def test_a_mirror_consistent_model_has_no_flip_attention():
    class Plain(nn.Module):
        out_channels = 1

        def forward(self, x):
            return x  # mirror-equivariant: CAM(hflip x) = hflip(CAM(x))

    pixels = torch.randint(0, 256, (5, 1, 3, 4), dtype=torch.uint8)
    out = flip_attention(
        Probe(Plain(), 2), pixels, torch.tensor([0, 1, 0, 1, 0]), Normalizer((0.5,), (0.25,)), "cpu"
    )
    assert np.allclose(out, 0.0, atol=1e-6)


def test_a_method_without_cams_has_no_flip_attention():
    class Narrow(Probe):
        def cams(self, fmap):
            return None

    out = flip_attention(
        Narrow(Positional(), 2),
        torch.zeros(2, 1, 1, 2, dtype=torch.uint8),
        torch.tensor([0, 1]),
        Normalizer((0.0,), (1.0,)),
        "cpu",
    )
    assert out is None
