"""GSMC's EMA teacher update, distillation term and loss against hand-computed values."""

import math

import pytest
import torch
from torch import nn

from methods.gsmc import ema_decay, ema_update, gsmc_loss, kl_per_sample


def test_ema_decay_schedule():
    assert ema_decay(0) == 0.0  # the first update copies the student
    assert ema_decay(1) == 0.5
    assert ema_decay(9) == pytest.approx(0.9)
    assert ema_decay(10**6) == 0.999


def test_ema_update_by_hand():
    teacher, student = nn.Linear(1, 1), nn.Linear(1, 1)
    with torch.no_grad():
        teacher.weight.fill_(1.0)
        teacher.bias.fill_(0.0)
        student.weight.fill_(3.0)
        student.bias.fill_(2.0)
    ema_update(teacher, student, 0.75)
    assert teacher.weight.item() == pytest.approx(0.75 * 1 + 0.25 * 3)
    assert teacher.bias.item() == pytest.approx(0.25 * 2)


def test_kl_by_hand():
    teacher = torch.log(torch.tensor([[0.5, 0.5]]))
    student = torch.log(torch.tensor([[0.25, 0.75]]))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_per_sample(teacher, student).item() == pytest.approx(expected)
    assert kl_per_sample(student, student).item() == pytest.approx(0.0, abs=1e-7)


def test_gsmc_loss_by_hand():
    student = torch.log(torch.tensor([[0.25, 0.75]]))
    teacher = torch.log(torch.tensor([[0.5, 0.5]]))
    y = torch.tensor([1])
    cam = torch.tensor([[[[1.0, 0.0]]]])
    cam_flipped = torch.tensor([[[[1.0, 0.0]]]])  # its mirror is [0, 1]: squared diffs 1, 1
    loss, kd, flip_cam = gsmc_loss(student, teacher, y, cam, cam_flipped)
    kl = 0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75)
    assert flip_cam.tolist() == [1.0]
    assert kd.item() == pytest.approx(kl)
    assert loss.item() == pytest.approx(-math.log(0.75) + 0.9 * kl + 0.2 * 1.0)
