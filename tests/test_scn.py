"""SCN's rank regularisation, relabel rule, loss and logit weighting against hand-computed
values."""

import math

import pytest
import torch
from torch import nn

from methods.scn import SCN, high_group_mask, rank_regularization, relabel, scn_loss


def test_high_group_is_the_top_int_beta_n():
    alpha = torch.tensor([0.3, 0.9, 0.1, 0.8, 0.2])
    # M = int(0.7 * 5) = 3: 0.9, 0.8, 0.3
    assert high_group_mask(alpha, 0.7).tolist() == [True, True, False, True, False]


def test_rank_regularization_by_hand():
    alpha = torch.tensor([0.9, 0.8, 0.3, 0.2, 0.1])
    # high mean (0.9 + 0.8 + 0.3) / 3 = 2/3, low mean 0.15, gap 0.51667
    assert rank_regularization(alpha, 0.7, 0.15).item() == 0.0
    assert rank_regularization(alpha, 0.7, 0.6).item() == pytest.approx(0.6 - (2 / 3 - 0.15))


def test_relabel_rule_by_hand():
    logits = torch.log(torch.tensor([[0.2, 0.8], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7]]))
    y = torch.tensor([0, 1, 0, 0])
    eligible = torch.tensor([True, True, True, False])
    # row 0: 0.8 - 0.2 = 0.6 > 0.2 -> 1; row 1: already argmax; row 2: 0 < 0.2; row 3: not eligible
    assert relabel(logits, y, eligible, 0.2).tolist() == [1, 1, 0, 0]


def test_scn_loss_paper_and_code_by_hand():
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    alpha = torch.tensor([0.5, 0.45])  # M = int(0.7 * 2) = 1: gap 0.05 -> L_RR = 0.15 - 0.05 = 0.1
    wce = (-math.log(math.e / (math.e + 1)) - math.log(1 / (math.e + 1))) / 2
    paper = scn_loss(logits, y, alpha, beta=0.7, delta1=0.15, gamma=0.3, mode="paper")
    code = scn_loss(logits, y, alpha, beta=0.7, delta1=0.15, gamma=0.3, mode="code")
    assert paper.item() == pytest.approx(0.3 * 0.1 + 0.7 * wce)
    assert code.item() == pytest.approx(wce + 0.1)


class Flat(nn.Module):
    out_channels = 2

    def forward(self, x):
        return x


def test_logits_are_scaled_by_the_importance_weight_bias_included():
    scn = SCN(Flat(), 2)
    with torch.no_grad():
        scn.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        scn.fc.bias.copy_(torch.tensor([1.0, -1.0]))
        scn.importance.weight.zero_()
        scn.importance.bias.fill_(math.log(3.0))  # sigmoid(log 3) = 0.75
    logits, alpha = scn.weighted(torch.tensor([[2.0, 3.0]]))
    assert alpha.tolist() == pytest.approx([0.75])
    assert logits.tolist()[0] == pytest.approx([0.75 * 3.0, 0.75 * 5.0])


def test_scn_trains_at_its_own_learning_rate_when_set():
    from methods import build_method
    from methods.backbones import build_backbone

    default = build_method("scn", build_backbone("resnet-small", 1), 3)
    assert [g["lr"] for g in default.param_groups(2e-4)] == [2e-4]
    official = build_method("scn", build_backbone("resnet-small", 1), 3, lr=1e-3)
    groups = official.param_groups(2e-4)
    assert [g["lr"] for g in groups] == [1e-3]
    assert sum(len(g["params"]) for g in groups) == len(list(official.parameters()))
