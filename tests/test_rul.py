"""RUL's uncertainty mixing and loss against hand-computed values."""

import math

import pytest
import torch
from torch import nn

from methods.rul import RUL, mix_by_uncertainty, rul_loss


def test_mixing_by_hand():
    mu = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    u = torch.tensor([1.0, 3.0])
    partner = torch.tensor([1, 0])
    z, w = mix_by_uncertainty(mu, u, partner)
    # w0 = 1 / (1 + 3) = 0.25: z0 = 0.25 mu0 + 0.75 mu1; w1 = 0.75: z1 = 0.75 mu1 + 0.25 mu0
    assert w.tolist() == [0.25, 0.75]
    assert z.tolist() == [[0.25, 0.75], [0.25, 0.75]]


def test_loss_is_half_and_half_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    y = torch.tensor([0, 1])
    partner = torch.tensor([1, 0])
    p = math.e**2 / (math.e**2 + 1)
    ce_own = (-math.log(p) - math.log(0.5)) / 2  # row 0 vs y0 = 0, row 1 vs y1 = 1
    ce_partner = (-math.log(1 - p) - math.log(0.5)) / 2  # row 0 vs y1 = 1, row 1 vs y0 = 0
    assert rul_loss(logits, y, partner).item() == pytest.approx(0.5 * ce_own + 0.5 * ce_partner)


class Flat(nn.Module):
    out_channels = 2

    def forward(self, x):
        return x


def test_uncertainty_is_mean_exp_log_var():
    rul = RUL(Flat(), 3, dim=2)
    with torch.no_grad():
        rul.log_var.weight.zero_()
        rul.log_var.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    _, u = rul.heads(torch.zeros(1, 2))
    assert u.tolist() == pytest.approx([(1.0 + 3.0) / 2])
