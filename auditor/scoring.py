"""From what each method's training revealed to every detector's score, the ensemble suspicion,
and the suggested labels. Detector names are `<method>_<detector>` (columns `score_<name>`,
`flag_<name>`), plus the ensemble `suspicion`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import auditor.detectors  # noqa: F401  (registers the built-in detectors)
from auditor.detectors.distinct import distinct_scores
from auditor.detectors.dynamics import aum_threshold_decision
from auditor.detectors.ensemble import flag_top, rank_average
from auditor.detectors.probabilities import estimated_issue_count, probability_detectors
from auditor.detectors.registry import DETECTORS, run_detector
from auditor.evidence import MethodEvidence

# The ensemble: per trusted method, a training-dynamics signal (AUM, robust to memorisation),
# the probability of the given label (out-of-sample with --folds) and the neighbourhood vote on
# the embeddings: three kinds of evidence that err differently. Measured on the demo (30%
# symmetric noise): AP 0.956 across ce+eac, 0.967 for ce alone, against 0.962 for the best
# single detector (ce_aum), and 0.932 for the earlier loss_mean+aum ensemble.
ENSEMBLE_MEMBERS = ("aum", "self_confidence", "knn")
# Methods whose test accuracy (last-5 mean) trails the best method's by more than this are left
# out of the ensemble: a method that learned less sees the noise less clearly.
ACCURACY_TOLERANCE = 0.02


def trusted_methods(accuracy: dict[str, float | None]) -> list[str]:
    """Methods within ACCURACY_TOLERANCE of the best test accuracy; all of them without one."""
    known = {m: a for m, a in accuracy.items() if a is not None}
    if not known:
        return list(accuracy)
    best = max(known.values())
    return [m for m in accuracy if m not in known or known[m] >= best - ACCURACY_TOLERANCE]


@dataclass
class Scores:
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # detector -> [N]
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # deciding detector -> [N] bool
    probs: np.ndarray | None = None  # [N, K] the probabilities suggestions come from
    ensemble_members: list[str] = field(default_factory=list)
    aum_thresholds: dict[str, list[float]] = field(default_factory=dict)  # method -> per run
    rank_identical: dict[str, list[str]] = field(default_factory=dict)  # kept -> dropped scores

    def finish(self, labels: np.ndarray) -> Scores:
        """Add the ensemble `suspicion` over `ensemble_members` and its flags (top n, n =
        confident learning's estimate of the number of label errors)."""
        suspicion = rank_average([self.scores[name] for name in self.ensemble_members])
        self.scores["suspicion"] = suspicion
        self.flags["suspicion"] = flag_top(suspicion, estimated_issue_count(self.probs, labels))
        return self


def method_scores(ev: MethodEvidence, labels: np.ndarray) -> tuple[dict, dict, list[float]]:
    """Every registered detector whose inputs this method's evidence has: ({name: score},
    {name: flags}, AUM thresholds), names prefixed `<method>_`. With --aum-threshold, AUM's
    flags come from its threshold-sample trainings (`aum_threshold_decision`)."""
    scores, flags = {}, {}
    for d in DETECTORS.values():
        inputs = ev.inputs(d.reads, labels)
        if inputs is not None:
            scores[d.name], flag = run_detector(d, inputs)
            if flag is not None:
                flags[d.name] = flag
    thresholds = []
    if ev.aum_runs is not None:
        flags["aum"], thresholds = aum_threshold_decision(ev.aum_runs)
    prefixed = [{f"{ev.name}_{k}": v for k, v in d.items()} for d in (scores, flags)]
    return prefixed[0], prefixed[1], thresholds


def score_all(
    evidence: list[MethodEvidence], labels: np.ndarray, accuracy: dict[str, float | None]
) -> Scores:
    """Every detector of every method; the ensemble over the trusted methods (`accuracy`:
    method -> test accuracy, last-5 mean, or None without a test split); suggestions from
    the trusted methods' mean probabilities."""
    out = Scores()
    for ev in evidence:
        scores, flags, thresholds = method_scores(ev, labels)
        out.scores |= scores
        out.flags |= flags
        if thresholds:
            out.aum_thresholds[ev.name] = thresholds
    trusted = trusted_methods(accuracy)
    out.ensemble_members = [
        f"{m}_{d}" for m in trusted for d in ENSEMBLE_MEMBERS if f"{m}_{d}" in out.scores
    ]
    out.probs = np.mean([ev.probs for ev in evidence if ev.name in trusted], axis=0)
    out.finish(labels)
    out.scores, out.rank_identical = distinct_scores(
        out.scores, protect=[*out.ensemble_members, "suspicion"]
    )
    return out


def score_probabilities(probs: np.ndarray, labels: np.ndarray) -> Scores:
    """`audit score`: the probability-only detectors on a user's own (out-of-sample)
    predictions; the ensemble is the mean rank of self-confidence and normalized margin."""
    scores, flags = probability_detectors(probs, labels)
    out = Scores(scores, flags, probs, ["self_confidence", "normalized_margin"])
    out.finish(labels)
    out.scores, out.rank_identical = distinct_scores(
        out.scores, protect=[*out.ensemble_members, "suspicion"]
    )
    return out
