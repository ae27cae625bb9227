"""The memorisation curves and the one-sentence verdict (`auditor.memorisation`), by hand."""

import numpy as np
import pytest

from auditor.memorisation import curves, verdict


def test_curves_by_hand():
    # 2 epochs, 4 samples, samples 2 and 3 noisy
    correct = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=np.float32)
    loss = np.array([[0.5, 0.7, 2.0, 3.0], [0.1, 0.3, 0.4, 2.0]], dtype=np.float32)
    c = curves(correct, loss, [0.6, 0.7], np.array([False, False, True, True]))
    assert c["fit"] == [0.5, 0.75]
    assert c["memorisation"] == [0.0, 0.5]
    assert c["loss_clean"] == pytest.approx([0.6, 0.2])
    assert c["loss_noisy"] == pytest.approx([2.5, 1.2])
    assert c["test_accuracy"] == [0.6, 0.7]
    assert "verdict" in c


def test_without_truth_only_the_fit_and_the_test_accuracy():
    c = curves(np.ones((2, 3)), np.zeros((2, 3)), [0.5, 0.5], None)
    assert set(c) == {"fit", "test_accuracy", "verdict"}


@pytest.mark.parametrize(
    ("fit", "test", "starts"),
    [
        ([0.5, 0.95], [0.73, 0.67], "Looks memorised"),  # gap 0.28, fell 0.06 from its peak
        ([0.5, 0.95], [0.73, 0.74], "Fits the given labels beyond"),  # gap 0.21, no fall
        ([0.5, 0.60], [0.73, 0.67], "No sign"),  # gap -0.07
        ([0.5, 0.76], [0.70, 0.67], "No sign"),  # gap 0.09 <= 0.10
    ],
)
def test_verdict(fit, test, starts):
    assert verdict(fit, test).startswith(starts)


def test_verdict_names_the_numbers():
    text = verdict([0.5, 0.95], [0.73, 0.67])
    assert "95% of the given training labels against 67% test accuracy" in text
    assert "peak 73% at epoch 1" in text


def test_no_test_split_says_it_cannot_judge():
    assert verdict([0.4, 0.9], []).startswith("No test or validation split")
