"""The early-learning reading: each method's probabilities from before it fitted the wrong labels.

A network trained on noisy labels first learns the patterns most samples share, and only later
fits the samples whose label disagrees with them (Arpit et al., ICML 2017; Liu et al., "Early-
Learning Regularization", NeurIPS 2020). A model read after it fitted them (a long run, a
pre-trained backbone) agrees with the wrong labels; a model read in the early-learning phase
does not. Without the truth, from what every run records per epoch e (no rule reads the truth):

    fit[e]      the share of trained samples whose training view the model classified as their
                given label (`signals["correct"]`, before that epoch's step on them)
    accuracy[e] the accuracy on the test split, or on the validation split's given labels
                (`auditor.data_choices`); absent without either

the run memorises from the first epoch `onset` at which its fit runs past what it can fit
honestly by both of two measures at once (none when they never hold together, or hold together
from the first epoch; without an accuracy curve, the first measure alone):

    fit[e] > 1 - rate                                  (rate: the share of samples DivideMix's
                                                        two-component mixture on the mean loss
                                                        puts in its high-loss component)
    fit[e] - max_{e' <= e} accuracy[e'] > GAP          (GAP = `auditor.memorisation.GAP`, 0.10;
                                                        only once that peak is above chance,
                                                        1 / K + CHANCE_MARGIN)

A fit above the clean share can only come from fitting wrong labels; a fit far above the best
accuracy so far is fitting what the model does not generalise (on the test split, true labels,
the early-learning fit is about (1 - rate) x the accuracy; on a validation split, given labels,
it tracks the accuracy). Either alone misfires: the second on small, hard data, where a model
still learning overfits its clean samples too (synthetic faces: it holds from epoch 17 of 60
while detection keeps improving until about epoch 30); the first when the loss mixture
misjudges the noise rate (a pre-trained backbone fine-tuned for 10 epochs: the mixture put half
the samples in its high-loss component, and the fit passed 50% at epoch 2). Requiring both
waits until they agree, at the same epoch: each can hold for a while for its own reason and then
stop (on scikit-learn's digits, 8 px, swaps in three class pairs, the eval-mode validation
accuracy lagged the training fit at epoch 2, 0.45 against 0.68, and caught up at epoch 3; the
mixture's clean share, 75% for 82%, was passed at epoch 4: taking each measure's first epoch
read an onset at 4 and counted on an untrained epoch 1). The running peak keeps one bad epoch
from starting memorisation.

The reading averages each sample's training-view probabilities (`MethodEvidence.epoch_probs`:
recorded in every step before the model trained on the sample that epoch, so no extra pass) over
the second half of the early-learning phase, epochs [ceil(onset / 2), onset - 1]
(`MethodEvidence.early_probs`, what the probability detectors and the suggestions read): late
enough to have learnt, early enough not to have fitted most of the noise, and averaged, which
steadies a single epoch's augmented view. Confident learning's count of the wrong labels reads
the first half's later part, epochs [ceil(onset / 4), ceil(onset / 2) - 1]
(`MethodEvidence.early_count_probs`): the fit of the wrong labels does not start at the onset,
it only runs past what the model generalises there, so a count that reads the probabilities
as wrong only where they disagree with the label falls all through the early phase, while a
ranking only needs the wrong labels to disagree more than the right ones. Measured
(bench/detection.py, CE on synthetic faces under human-fer confusions, 60 epochs, onsets at
36-44, 285-289 wrong labels): the count on the second half read 28-45, on the first half's
later part 169-259; the margin ranks best on the second half (AP 0.71-0.73 against 0.61-0.69).
Before a quarter of the onset the model has not learnt yet (the count reads 446-545 on epochs
3-8). A run with no onset is read as before: the model at its best epoch (or the final model),
for the count too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from auditor.evidence import MethodEvidence
from auditor.memorisation import GAP

CHANCE_MARGIN = 0.1  # an accuracy within this of chance (1 / K) says nothing (as auditor.symmetry)


@dataclass(frozen=True)
class EarlyReading:
    """Where one method's early-learning reading comes from."""

    onset: int | None  # 1-based first epoch that fits beyond what the model generalises; None
    first: int | None  # 1-based epochs averaged, first..last; None without an onset
    last: int | None
    reason: str  # one sentence: what was read, and why
    # 1-based epochs confident learning's count reads, count_first..count_last; None without one
    count_first: int | None = None
    count_last: int | None = None

    @property
    def count_epochs(self) -> EarlyReading:
        """This reading with the count's epochs as the ones averaged."""
        return replace(self, first=self.count_first, last=self.count_last)

    @property
    def memorised(self) -> bool:
        return self.onset is not None


def loss_mixture_rate(loss: np.ndarray) -> float:
    """The share of samples that DivideMix's two-component mixture on the mean loss (over the
    epochs given, [epochs, N]) puts in its high-loss component: an estimate of the noise rate."""
    from auditor.detectors.dynamics import loss_mixture

    posterior, _ = loss_mixture(loss)
    return float((posterior > 0.5).mean())


def memorisation_onset(
    fit: np.ndarray, accuracy: list[float], loss: np.ndarray, classes: int = 2
) -> tuple[int | None, str]:
    """(1-based onset epoch or None, the criteria in words): see the module docstring. `fit`
    [epochs], `accuracy` per epoch (empty without a test or validation split), `loss` [epochs,
    N] of the trained samples, `classes` K. The onset is the first epoch at which every criterion
    holds, unless that is the first epoch. The accuracy is compared only once its running peak
    is above chance by CHANCE_MARGIN (a model at chance on the test split has learnt nothing to
    generalise yet)."""
    rate = loss_mixture_rate(loss)
    criteria = {
        f"its fit of the given labels exceeds the clean share the loss mixture estimates "
        f"({1 - rate:.0%})": fit > 1.0 - rate
    }
    if len(accuracy) == len(fit) and len(fit):
        peak = np.maximum.accumulate(np.asarray(accuracy, dtype=np.float64))
        learnt = peak > 1.0 / classes + CHANCE_MARGIN
        criteria[f"its fit exceeds its best accuracy so far by more than {GAP}"] = learnt & (
            fit - peak > GAP
        )
    held = np.logical_and.reduce(list(criteria.values()))
    if not held.any() or held[0]:  # never together, or from the first epoch: no early phase
        return None, " and ".join(criteria)
    return int(np.argmax(held)) + 1, " and ".join(criteria)


def early_reading(
    name: str, fit: np.ndarray, accuracy: list[float], loss: np.ndarray, classes: int = 2
) -> EarlyReading:
    """The epochs method `name` is read at (see the module docstring)."""
    onset, what = memorisation_onset(fit, accuracy, loss, classes)
    if onset is None:
        return EarlyReading(
            None, None, None, f"{name}: no memorisation read (not from epoch 2 on: {what})"
        )
    first, last = (onset + 1) // 2, onset - 1
    count_first = (onset + 3) // 4
    count_last = max(count_first, first - 1)
    return EarlyReading(
        onset,
        first,
        last,
        f"{name}: memorises from epoch {onset} of {len(fit)} ({what}); probabilities averaged "
        f"over {epoch_words(first, last)}, before it; the count of wrong labels over "
        f"{epoch_words(count_first, count_last)}, before it fits them",
        count_first,
        count_last,
    )


def epoch_words(first: int, last: int) -> str:
    return f"epochs {first}-{last}" if last > first else f"epoch {first}"


def averaged_probs(epoch_probs: np.ndarray, reading: EarlyReading) -> np.ndarray:
    """[N, K] the mean of `epoch_probs` [epochs, N, K] over the reading's epochs, renormalised
    (each epoch's rows are float16 softmaxes)."""
    probs = epoch_probs[reading.first - 1 : reading.last].astype(np.float64).mean(axis=0)
    return probs / probs.sum(axis=1, keepdims=True)


def read_early(
    ev: MethodEvidence, held_out: np.ndarray | None = None
) -> tuple[MethodEvidence, EarlyReading | None]:
    """(`ev` with its early-learning probabilities when its run memorises, the reading), or
    (`ev`, None) when it recorded no per-epoch probabilities. The fit is read over the trained
    samples (not the validation split's `held_out` indices, which were never trained on)."""
    if ev.epoch_probs is None or "correct" not in ev.signals or not len(ev.epoch_probs):
        return ev, None
    trained = np.ones(ev.signals["correct"].shape[1], dtype=bool)
    if held_out is not None:
        trained[held_out] = False
    fit = ev.signals["correct"][:, trained].mean(axis=1)
    reading = early_reading(
        ev.name, fit, ev.epoch_accuracy, ev.signals["loss"][:, trained], ev.epoch_probs.shape[2]
    )
    if not reading.memorised:
        return ev, reading
    if not ev.epoch_probs[reading.count_first - 1 : reading.last].any(axis=(1, 2)).all():
        # epochs trained before a resume by a version that did not record probabilities
        unread = f"{reading.reason}; not recorded for those epochs (resumed), read as before"
        return ev, EarlyReading(None, None, None, unread)
    early = averaged_probs(ev.epoch_probs, reading)
    counted = averaged_probs(ev.epoch_probs, reading.count_epochs)
    return replace(ev, early_probs=early, early_count_probs=counted), reading


def early_loss_count(ev: MethodEvidence, reading: EarlyReading | None) -> tuple[int, float]:
    """(how many labels DivideMix's loss mixture estimates are wrong, how well its two components
    separate: `auditor.detectors.dynamics.ashman_d`): the samples in the high-loss component of
    the mean loss over the epochs before the onset of memorisation (every epoch when the run
    does not memorise), where the wrong labels still cost more."""
    from auditor.detectors.dynamics import loss_mixture

    loss = ev.signals["loss"]
    if reading is not None and reading.memorised:
        loss = loss[: reading.last]
    posterior, separation = loss_mixture(loss)
    return int((posterior > 0.5).sum()), separation
