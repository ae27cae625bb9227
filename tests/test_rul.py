"""RUL's uncertainty mixing and loss against hand-computed values."""

import math

import pytest
import torch
from torch import nn

from methods.backbones import build_backbone
from methods.rul import RUL, RULOptions, mix_by_uncertainty, rul_loss


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
    rul = RUL(Flat(), 3, RULOptions(heads="linear"), dim=2)
    with torch.no_grad():
        rul.log_var.weight.zero_()
        rul.log_var.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    _, u = rul.heads(torch.zeros(1, 2, 1, 1))
    assert u.tolist() == pytest.approx([(1.0 + 3.0) / 2])


def test_official_heads_read_the_7x7_map():
    rul = RUL(build_backbone("resnet-small", 1), 3)  # heads="official" by default
    layers = [type(m).__name__ for m in rul.mu]
    assert layers == [
        "AdaptiveAvgPool2d",
        "BatchNorm2d",
        "Dropout",
        "Flatten",
        "Linear",
        "BatchNorm1d",
    ]
    assert not rul.mu[1].affine and rul.mu[2].p == 0.4
    assert rul.mu[4].in_features == 64 * 7 * 7 and rul.mu[4].out_features == 64
    for size in (28, 48):  # any map size is pooled to 7 x 7
        logits, pooled = rul.eval()(torch.zeros(2, 1, size, size))
        assert logits.shape == (2, 3) and pooled.shape == (2, 64)


def test_fc_trains_at_ten_times_the_rate_of_backbone_and_heads():
    rul = RUL(build_backbone("resnet-small", 1), 3)
    rest, fc = rul.param_groups(1e-3)
    assert rest["lr"] == 1e-3 and fc["lr"] == pytest.approx(1e-2)
    assert {id(p) for p in fc["params"]} == {id(p) for p in rul.fc.parameters()}
    everything = {id(p) for p in rul.parameters()}
    assert {id(p) for p in rest["params"]} == everything - {id(p) for p in fc["params"]}
    assert any(
        p is rul.mu[4].weight for p in rest["params"]
    )  # the heads: the feature module's rate
    optimizer = torch.optim.Adam(rul.param_groups(2e-4), lr=2e-4)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-4, pytest.approx(2e-3)]
