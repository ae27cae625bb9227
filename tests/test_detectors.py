import numpy as np
import pytest
import torch

from auditor.detectors.dynamics import area_under_margin, mean_flip_cam, mean_loss
from auditor.detectors.ensemble import flag_top, rank_average
from auditor.detectors.probabilities import cleanlab_detector, final_loss, self_confidence
from auditor.evaluation import accuracy_protocols, detection_metrics
from auditor.training.signals import common_signals, logit_margin


def test_common_signals_by_hand():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    y = torch.tensor([0, 2])
    s = common_signals(logits, y)
    assert s["margin"].tolist() == [1.0, -3.0]  # 2 - 1; 0 - 3
    p0 = np.exp(2) / (np.exp(2) + 1 + np.exp(1))
    assert s["p_given"][0].item() == pytest.approx(p0, rel=1e-6)
    assert s["loss"][0].item() == pytest.approx(-np.log(p0), rel=1e-6)
    assert s["correct"].tolist() == [1.0, 0.0]


def test_logit_margin_with_ties():
    assert logit_margin(torch.tensor([[1.0, 1.0]]), torch.tensor([0])).tolist() == [0.0]


def test_dynamics_detectors_direction():
    loss = np.array([[0.1, 2.0], [0.3, 1.0]])  # [epochs, N]
    margin = np.array([[3.0, -1.0], [1.0, -2.0]])
    assert mean_loss(loss).tolist() == pytest.approx([0.2, 1.5])
    assert area_under_margin(margin).tolist() == [-2.0, 1.5]  # negated: sample 1 more suspect
    assert mean_flip_cam(np.array([[1.0], [3.0]])).tolist() == [2.0]


def test_probability_detectors_direction():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    labels = np.array([0, 0])
    assert self_confidence(probs, labels).tolist() == pytest.approx([0.1, 0.8])
    assert final_loss(probs, labels).tolist() == pytest.approx([-np.log(0.9), -np.log(0.2)])


def test_cleanlab_flags_confident_disagreements():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 600)
    given = true.copy()
    flipped = rng.random(600) < 0.2
    given[flipped] = (true[flipped] + 1) % 3
    probs = np.full((600, 3), 0.05)
    probs[np.arange(600), true] = 0.9
    score, flags = cleanlab_detector(probs, given)
    assert flags.dtype == bool
    assert (flags == flipped).mean() > 0.95
    assert score[flipped].min() > score[~flipped].max()


def test_rank_average_and_flags():
    a = np.array([0.0, 1.0, 2.0, 3.0])
    b = np.array([30.0, 20.0, 10.0, 40.0])
    s = rank_average([a, b])
    # ranks/(n-1): a -> 0, 1/3, 2/3, 1; b -> 2/3, 1/3, 0, 1
    assert s.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    assert flag_top(s, 1).tolist() == [False, False, False, True]
    assert flag_top(s, 0).sum() == 0


def test_detection_metrics_by_hand():
    score = np.array([0.9, 0.8, 0.3, 0.1])
    noisy = np.array([True, False, True, False])
    flags = np.array([True, True, False, False])
    m = detection_metrics(score, noisy, flags)
    assert m["auroc"] == pytest.approx(
        0.75
    )  # pairs (noisy, clean): 0.9>0.8, 0.9>0.1, 0.3<0.8, 0.3>0.1
    assert m["precision_at_k"] == pytest.approx(0.5)  # k = 2: top two are 0.9 (noisy), 0.8 (clean)
    assert (m["precision"], m["recall"], m["f1"], m["flagged"]) == (0.5, 0.5, 0.5, 2)
    assert detection_metrics(score, np.zeros(4, bool))["auroc"] is None


def test_accuracy_protocols():
    acc = accuracy_protocols([0.1, 0.5, 0.4, 0.6, 0.3, 0.2, 0.7])
    assert acc["last"] == 0.7 and acc["best"] == 0.7
    assert acc["last5_mean"] == pytest.approx((0.4 + 0.6 + 0.3 + 0.2 + 0.7) / 5)
    assert accuracy_protocols([])["last"] is None
