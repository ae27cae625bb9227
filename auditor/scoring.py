"""From what each method's training revealed to every detector's score, the ensemble suspicion,
and the suggested labels. Detector names are `<method>_<detector>` (columns `score_<name>`,
`flag_<name>`), plus the ensemble `suspicion`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from auditor.detectors.dynamics import (
    SIGNAL_DETECTORS,
    area_under_margin,
    cartography_confidence,
    cartography_variability,
    forgetting_events,
    loss_gmm,
    mean_loss,
    relabelled,
)
from auditor.detectors.ensemble import flag_top, rank_average
from auditor.detectors.neighbours import knn_label_disagreement
from auditor.detectors.probabilities import (
    estimated_issue_count,
    final_loss,
    probability_detectors,
)

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
class MethodEvidence:
    """What one method's training left behind for the detectors."""

    name: str
    signals: dict[str, np.ndarray]  # [epochs, N]
    final_probs: np.ndarray  # [N, K], final model, un-augmented images (in-sample)
    oos_probs: np.ndarray | None = None  # [N, K], cross-fitted, when --folds >= 2
    embeddings: np.ndarray | None = None  # [N, C], final model's pooled features
    final_labels: np.ndarray | None = None  # [N] what the method trained on at the end
    relabels: bool = False  # whether the method changes labels during training (SCN)
    relabel_events: dict[str, np.ndarray] = field(default_factory=dict)
    aum_flags: np.ndarray | None = None  # [N] from threshold-sample runs (--aum-threshold)

    @property
    def probs(self) -> np.ndarray:
        """The probabilities the probability detectors read: out-of-sample when available."""
        return self.oos_probs if self.oos_probs is not None else self.final_probs


@dataclass
class Scores:
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # detector -> [N]
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # deciding detector -> [N] bool
    probs: np.ndarray | None = None  # [N, K] the probabilities suggestions come from
    ensemble_members: list[str] = field(default_factory=list)

    def finish(self, labels: np.ndarray) -> Scores:
        """Add the ensemble `suspicion` over `ensemble_members` and its flags (top n, n =
        confident learning's estimate of the number of label errors)."""
        suspicion = rank_average([self.scores[name] for name in self.ensemble_members])
        self.scores["suspicion"] = suspicion
        self.flags["suspicion"] = flag_top(suspicion, estimated_issue_count(self.probs, labels))
        return self


def method_scores(ev: MethodEvidence, labels: np.ndarray) -> tuple[dict, dict]:
    m = ev.name
    scores, flags = probability_detectors(ev.probs, labels)
    s = ev.signals
    gmm_score, gmm_flags = loss_gmm(s["loss"])
    scores |= {
        "loss": final_loss(ev.final_probs, labels),
        "loss_mean": mean_loss(s["loss"]),
        "aum": area_under_margin(s["margin"]),
        "forgetting": forgetting_events(s["correct"]),
        "cartography_confidence": cartography_confidence(s["p_given"]),
        "cartography_variability": cartography_variability(s["p_given"]),
        "loss_gmm": gmm_score,
    }
    flags["loss_gmm"] = gmm_flags
    if ev.aum_flags is not None:
        flags["aum"] = ev.aum_flags
    if ev.embeddings is not None and len(ev.embeddings):
        scores["knn"] = knn_label_disagreement(ev.embeddings, labels)
    for signal, detector in SIGNAL_DETECTORS.items():
        if signal in s:
            scores[signal] = detector(s[signal])
    if ev.relabels:
        scores["relabel"] = relabelled(ev.final_labels, labels)
        flags["relabel"] = scores["relabel"] > 0
    return {f"{m}_{k}": v for k, v in scores.items()}, {f"{m}_{k}": v for k, v in flags.items()}


def score_all(
    evidence: list[MethodEvidence], labels: np.ndarray, accuracy: dict[str, float | None]
) -> Scores:
    """Every detector of every method; the ensemble over the trusted methods (`accuracy`:
    method -> test accuracy, last-5 mean, or None without a test split); suggestions from
    the trusted methods' mean probabilities."""
    out = Scores()
    for ev in evidence:
        scores, flags = method_scores(ev, labels)
        out.scores |= scores
        out.flags |= flags
    trusted = trusted_methods(accuracy)
    out.ensemble_members = [
        f"{m}_{d}" for m in trusted for d in ENSEMBLE_MEMBERS if f"{m}_{d}" in out.scores
    ]
    out.probs = np.mean([ev.probs for ev in evidence if ev.name in trusted], axis=0)
    return out.finish(labels)


def score_probabilities(probs: np.ndarray, labels: np.ndarray) -> Scores:
    """`audit score`: the probability-only detectors on a user's own (out-of-sample)
    predictions; the ensemble is the mean rank of self-confidence and normalized margin."""
    scores, flags = probability_detectors(probs, labels)
    out = Scores(scores, flags, probs, ["self_confidence", "normalized_margin"])
    return out.finish(labels)
