"""The early-learning reading (`auditor.early_learning`) on hand-made per-epoch curves: a run that
never memorises is read as before (its best epoch), one that memorises is read before it."""

import numpy as np
import pytest

from auditor.early_learning import (
    averaged_probs,
    early_reading,
    memorisation_onset,
    read_early,
)
from auditor.evidence import MethodEvidence

EPOCHS, N, K = 8, 6, 3
# 2 of 6 samples keep a high loss: the loss mixture's noisy share is 1/3, its clean share 2/3
LOSS = np.tile([0.1, 0.1, 0.2, 0.1, 3.0, 3.2], (EPOCHS, 1))
NO_LOSS = LOSS  # the name the accuracy-led cases use: the fit there never passes 2/3 early


def test_a_run_that_never_fits_beyond_its_accuracy_nor_the_clean_share_has_no_onset():
    fit = np.array([0.3, 0.5, 0.6, 0.62, 0.64, 0.65, 0.66, 0.66])  # <= 2/3
    accuracy = [0.35, 0.55, 0.62, 0.66, 0.68, 0.7, 0.7, 0.71]  # fit - peak <= 0.02
    onset, _ = memorisation_onset(fit, accuracy, NO_LOSS)
    assert onset is None
    reading = early_reading("ce", fit, accuracy, NO_LOSS)
    assert not reading.memorised and reading.first is None
    assert reading.reason.startswith("ce: no memorisation read (not from epoch 2 on: its fit")


def test_a_run_that_memorises_is_read_before_its_onset():
    # fit - running peak of the accuracy: 0, 0, 0.02, 0.08, 0.11 (> 0.10 at epoch 5), ...;
    # fit > 2/3 from epoch 4: both hold first at epoch 5, the onset
    fit = np.array([0.3, 0.5, 0.62, 0.70, 0.75, 0.85, 0.95, 0.99])
    accuracy = [0.3, 0.5, 0.6, 0.62, 0.64, 0.6, 0.58, 0.57]
    onset, what = memorisation_onset(fit, accuracy, NO_LOSS)
    assert onset == 5 and "loss mixture estimates (67%)" in what and "by more than 0.1" in what
    reading = early_reading("ce", fit, accuracy, NO_LOSS)
    assert (reading.onset, reading.first, reading.last) == (5, 3, 4)
    assert "memorises from epoch 5 of 8" in reading.reason
    assert "averaged over epochs 3-4" in reading.reason


def test_the_running_peak_keeps_one_bad_epoch_from_starting_memorisation():
    fit = np.array([0.3, 0.5, 0.6, 0.62, 0.64, 0.66])
    accuracy = [0.3, 0.55, 0.62, 0.40, 0.63, 0.66]  # epoch 4 dips 0.22 below the fit
    assert memorisation_onset(fit, accuracy, LOSS[:6])[0] is None


def test_one_measure_alone_is_not_enough():
    fit = np.array([0.3, 0.5, 0.6, 0.7, 0.8, 0.9])  # > 2/3 from epoch 4
    accuracy = [0.3, 0.5, 0.6, 0.7, 0.8, 0.9]  # never beyond
    assert memorisation_onset(fit, accuracy, LOSS[:6])[0] is None
    accuracy = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3]  # beyond from epoch 3, the clean share from 4
    assert memorisation_onset(fit, accuracy, LOSS[:6], classes=10)[0] == 4


def test_the_two_measures_must_hold_at_the_same_epoch():
    # the eval-mode accuracy lags the fit at epoch 2 only (0.65 - 0.45 > 0.1), the fit passes
    # the clean share 2/3 from epoch 4 while it stays within 0.1 of the accuracy's peak
    # (digits under swaps: each measure's first epoch would read an onset at 4)
    fit = np.array([0.43, 0.65, 0.66, 0.70, 0.72, 0.74, 0.75, 0.76])
    accuracy = [0.12, 0.45, 0.72, 0.77, 0.78, 0.79, 0.79, 0.78]
    assert memorisation_onset(fit, accuracy, NO_LOSS, classes=10)[0] is None
    fit[6:] = [0.90, 0.95]  # then it runs away from both: the onset is where they first agree
    assert memorisation_onset(fit, accuracy, NO_LOSS, classes=10)[0] == 7


def test_without_an_accuracy_the_fit_is_held_against_the_loss_mixtures_clean_share():
    fit = np.array([0.2, 0.4, 0.5, 0.6, 0.66, 0.7, 0.9, 1.0])  # > 2/3 first at epoch 6
    onset, what = memorisation_onset(fit, [], LOSS)
    assert onset == 6 and "clean share the loss mixture estimates (67%)" in what


def test_averaged_probs_is_the_renormalised_mean_over_the_reading():
    epoch_probs = np.zeros((EPOCHS, N, K), dtype=np.float16)
    epoch_probs[:, :, 0] = 1.0
    epoch_probs[2] = epoch_probs[3] = np.float16(0.0)
    epoch_probs[2, :, 1] = 1.0  # epoch 3 says class 1, epoch 4 class 2
    epoch_probs[3, :, 2] = 1.0
    reading = early_reading(
        "ce",
        np.array([0.3, 0.5, 0.62, 0.70, 0.75, 0.85, 0.95, 0.99]),
        [0.3, 0.5, 0.6, 0.62, 0.64, 0.6, 0.58, 0.57],
        NO_LOSS,
    )
    np.testing.assert_allclose(averaged_probs(epoch_probs, reading), [[0, 0.5, 0.5]] * N)


@pytest.mark.parametrize("memorises", [False, True])
def test_read_early_changes_what_the_probability_detectors_read_only_when_memorised(memorises):
    fit = [0.3, 0.5, 0.62, 0.70, 0.75, 0.85, 0.95, 0.99] if memorises else [0.3, 0.5] + [0.6] * 6
    correct = (np.arange(N)[None, :] / N < np.array(fit)[:, None]).astype(np.float32)
    accuracy = [0.3, 0.5, 0.6, 0.62, 0.64, 0.6, 0.58, 0.57] if memorises else [0.3] + [0.7] * 7
    epoch_probs = np.full((EPOCHS, N, K), 1 / K, dtype=np.float16)
    best = np.eye(K)[np.arange(N) % K]
    ev = MethodEvidence(
        "ce",
        {"correct": correct, "loss": LOSS},
        best,
        best_probs=best,
        best_epoch=8,
        epoch_probs=epoch_probs,
        epoch_accuracy=accuracy,
    )
    read, reading = read_early(ev)
    assert reading.memorised is memorises
    expected = np.full((N, K), 1 / K) if memorises else best
    np.testing.assert_allclose(read.probs, expected, atol=1e-3)
    assert ev.early_probs is None  # the evidence given is not changed


def test_epochs_without_recorded_probabilities_are_read_as_before():
    """A run resumed from a checkpoint written before the probabilities were recorded has zeros
    for its earlier epochs: it is read as before, and says so."""
    fit = [0.3, 0.5, 0.62, 0.70, 0.75, 0.85, 0.95, 0.99]
    correct = (np.arange(N)[None, :] / N < np.array(fit)[:, None]).astype(np.float32)
    best = np.eye(K)[np.arange(N) % K]
    ev = MethodEvidence(
        "ce",
        {"correct": correct, "loss": LOSS},
        best,
        best_probs=best,
        best_epoch=8,
        epoch_probs=np.zeros((EPOCHS, N, K), dtype=np.float16),
        epoch_accuracy=[0.3, 0.5, 0.6, 0.62, 0.64, 0.6, 0.58, 0.57],
    )
    read, reading = read_early(ev)
    assert not reading.memorised and "not recorded for those epochs" in reading.reason
    np.testing.assert_allclose(read.probs, best)


def test_an_accuracy_at_chance_starts_nothing():
    """A model at chance on the test split (10 classes, 0.1-0.15) has learnt nothing to
    generalise: its fit running ahead is not memorisation, even past the clean share."""
    fit = np.array([0.2, 0.3, 0.4, 0.5, 0.7, 0.8, 0.9, 0.9])  # > 2/3 from epoch 5
    accuracy = [0.1, 0.12, 0.1, 0.15, 0.1, 0.1, 0.12, 0.1]
    assert memorisation_onset(fit, accuracy, LOSS, classes=10)[0] is None
    learnt = [0.32] * EPOCHS  # above chance: beyond it from epoch 4
    assert memorisation_onset(fit, learnt, LOSS, classes=10)[0] == 5


def test_the_count_reads_earlier_epochs_than_the_ranking():
    """A run that memorises from epoch 9 of 12: the ranking reads epochs 5-8, the count epochs
    3-4. Hand-made probabilities: the two wrong labels (samples 4 and 5) disagree with the model
    up to epoch 4 and are fitted from epoch 5 on, as a run fits wrong labels before its onset;
    the count on epochs 3-4 sees them, the one on epochs 5-8 would not."""
    epochs = 12
    fit = np.array([0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.64, 0.8, 0.9, 0.95, 1.0])
    accuracy = [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.64, 0.65, 0.64, 0.63, 0.62]
    reading = early_reading("ce", fit, accuracy, np.tile(LOSS[0], (epochs, 1)))
    assert (reading.onset, reading.first, reading.last) == (9, 5, 8)
    assert (reading.count_first, reading.count_last) == (3, 4)
    assert "the count of wrong labels over epochs 3-4, before it fits them" in reading.reason
    labels = np.arange(N) % K
    truth = labels.copy()
    truth[4:] = (labels[4:] + 1) % K  # samples 4 and 5 carry a wrong label
    epoch_probs = np.zeros((epochs, N, K), dtype=np.float16)
    epoch_probs[:, np.arange(N), labels] = 0.9
    epoch_probs[:, np.arange(N), (labels + 1) % K] = 0.1
    epoch_probs[:4, 4:] = 0.0
    epoch_probs[:4, np.arange(4, N), truth[4:]] = 0.9
    epoch_probs[:4, np.arange(4, N), labels[4:]] = 0.1
    correct = (np.arange(N)[None, :] / N < fit[:, None]).astype(np.float32)
    ev = MethodEvidence(
        "ce",
        {"correct": correct, "loss": np.tile(LOSS[0], (epochs, 1))},
        epoch_probs[-1].astype(np.float64),
        epoch_probs=epoch_probs,
        epoch_accuracy=accuracy,
    )
    read, _ = read_early(ev)
    assert (read.count_probs.argmax(axis=1) != labels).sum() == 2
    assert (read.probs.argmax(axis=1) != labels).sum() == 0
    assert ev.count_probs is ev.probs  # no reading: the count reads what the detectors read
