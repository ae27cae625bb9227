"""How many samples to flag: one estimate of the number of label errors per kind of evidence,
their median (their mean with two), unless a loss mixture separates clearly, which counts alone.

The kinds: confident learning's count on the trusted methods' probabilities
(`cleanlab.count.num_label_issues`; for a method that memorised, on earlier epochs than it
ranks, `auditor.early_learning`), the loss mixtures' (DivideMix's two-component mixture on
each trusted method's mean loss: the samples in its high-loss component; the mean over the
methods whose components separate, Ashman's D above MIXTURE_SEPARATION) and, with --weights,
confident learning's on the frozen features' cross-validated probabilities, which never
fitted the given labels. Each fails in its own regime: confident learning undercounts on a
model that fitted the noise; the loss mixture undercounts confusions between similar classes
and overcounts hard clean ones early in fine-tuning (its components then overlap); the frozen
features' count takes their own errors for label errors. The median leaves out one that
fails (measured in bench/detection.py: README, "Detection benchmark"). A loss mixture whose
components lie clearly apart (Ashman's D at least CLEAR_SEPARATION) counts alone: its high-loss
component is then the wrong labels, where confident learning's count on in-sample probabilities
still depends on how confident the model is on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Estimates of the number of label errors more than this many times apart are said to disagree.
DISAGREEMENT = 1.5
# A loss mixture whose two components are no further apart than this (Ashman's D,
# `auditor.detectors.dynamics.ashman_d`: the textbook bound for two cleanly separated Gaussians, not
# tuned here) does not count the label errors: its high-loss component then takes in hard clean
# samples, or leaves out wrong labels the model half-fitted. Measured (bench/detection.py, 20 cells,
# 3 seeds, every trusted method's mixture): at D >= 2.5 it counted 0.84-1.31 times the wrong labels
# (the demo under symmetric, instance and pair noise); at D <= 2 anywhere from 0.38 to 2.68 times
# (synthetic faces after 60 epochs under pair noise, D 1.54-1.79: 1.8-2.4 times, the flip's wrong
# labels costing barely more than the hard clean faces, mean loss 1.63-1.71 against 1.27-1.48; under
# human-fer noise, D 1.57-1.76: 0.5-0.7 times; two-way swaps on the demo, D 1.12-1.56: 0.56-2.68
# times). The bound does not catch every failure: between 2 and 2.5 it counted 0.51-2.57 times (pre-
# trained faces, faces after 10 epochs under pair noise).
MIXTURE_SEPARATION = 2.0
# A loss mixture at least this far apart counts alone. Measured: at D >= 3 the mixtures counted
# 0.84-1.07 times the wrong labels (bench/detection.py, 14 seeds of 6 cells, the demo under
# symmetric and instance noise, pre-trained or not; scikit-learn's digits as an image folder, 30
# epochs, symmetric and instance noise, 3 seeds each: 1.02-1.10), confident learning at the same
# seeds 0.99-1.18 on the demo and 0.64-0.74 on digits: a model sure of its clean digits but pulled
# towards the given label on the wrong ones (in-sample probabilities: it trained on them) leaves
# most of them under the class thresholds. Between 2 and 3 the mixtures counted 0.51-2.57 times.
CLEAR_SEPARATION = 3.0


@dataclass(frozen=True)
class FlagCount:
    n: int  # how many to flag
    estimates: dict[str, int]  # estimator -> its estimate (every one, counted or not)
    separation: dict[str, float]  # loss mixture estimator -> Ashman's D (2 decimals)
    decision: str  # the decision in words


def flag_count(
    confident_learning: int,
    loss_estimates: dict[str, int],
    loss_separation: dict[str, float],
    frozen_estimate: int | None = None,
) -> FlagCount:
    """n = the mean of the loss mixtures' estimates (`loss_estimates`: method -> count) whose
    components lie clearly apart (`loss_separation`: method -> Ashman's D, at least
    CLEAR_SEPARATION) when there is one; otherwise the median of [confident_learning, the mean
    of the loss mixtures' estimates whose components separate (above MIXTURE_SEPARATION; a
    method without one counts), frozen_estimate (when given)], the mean with two kinds; rounded.
    D is read rounded to 2 decimals, as reported. Estimates (every one, counted or not) more
    than DISAGREEMENT times apart are said to disagree, with the ratio; a loss mixture left out
    is named, with its D, and so is one that counts alone."""
    estimates = {"confident_learning": confident_learning}
    estimates |= {f"loss_mixture_{m}": k for m, k in loss_estimates.items()}
    rounded = {m: round(d, 2) for m, d in loss_separation.items()}  # decided as reported
    separation = {f"loss_mixture_{m}": d for m, d in rounded.items()}
    overlapping = {m for m, d in rounded.items() if d <= MIXTURE_SEPARATION}
    clear = {m for m, d in rounded.items() if d >= CLEAR_SEPARATION and m in loss_estimates}
    separated = [k for m, k in loss_estimates.items() if m not in overlapping]
    kinds = [float(confident_learning)]
    kinds += [float(np.mean(separated))] if separated else []
    words = [f"confident learning's {confident_learning}"]
    for m, k in loss_estimates.items():
        words.append(f"{m}'s loss mixture's {k}")
        if m in overlapping:
            words[-1] += (
                f" (left out: its components overlap, Ashman's D {rounded[m]:.2f} <= "
                f"{MIXTURE_SEPARATION:g})"
            )
        elif m in clear:
            words[-1] += f" (its components clearly apart, Ashman's D {rounded[m]:.2f})"
    if frozen_estimate is not None:
        estimates["confident_learning_frozen"] = frozen_estimate
        kinds.append(float(frozen_estimate))
        words.append(f"confident learning's on the frozen features {frozen_estimate}")
    low, high = min(estimates.values()), max(estimates.values())
    apart = ""
    if high > DISAGREEMENT * max(low, 1):
        apart = f"; they disagree, the largest {high / max(low, 1):.1f} times the smallest"
    if clear:
        n = int(round(np.mean([loss_estimates[m] for m in clear])))
        rule = (
            f"the loss mixture{'s' if len(clear) > 1 else ''} whose components lie clearly apart "
            f"(Ashman's D >= {CLEAR_SEPARATION:g}) count{'' if len(clear) > 1 else 's'} alone"
        )
    elif len(kinds) == 1:
        n = int(round(kinds[0]))
        rule = "the one estimate of the number of label errors that counts"
    else:
        n = int(round(np.median(kinds)))
        how = "the mean" if len(kinds) == 2 else "the median"
        rule = f"{how} of the estimated numbers of label errors, one per kind of evidence"
    decision = f"flags the {n} most suspect: {rule} ({', '.join(words)}){apart}"
    return FlagCount(n, estimates, separation, decision)
