"""From what each method's training revealed to every detector's score, the ensemble suspicion,
and the suggested labels. Detector names are `<method>_<detector>` (columns `score_<name>`,
`flag_<name>`), plus the ensemble `suspicion`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from auditor.detectors.dynamics import SIGNAL_DETECTORS, area_under_margin, mean_loss, relabelled
from auditor.detectors.ensemble import flag_top, rank_average
from auditor.detectors.probabilities import (
    cleanlab_detector,
    estimated_issue_count,
    final_loss,
    self_confidence,
)

# Members of the ensemble, per method: signals accumulated over training (robust to
# memorisation) and the out-of-sample probability when cross-fitting provides one.
ENSEMBLE_MEMBERS = ("loss_mean", "aum")
ENSEMBLE_MEMBERS_CROSS_FITTED = ("self_confidence",)


@dataclass
class MethodEvidence:
    """What one method's training left behind for the detectors."""

    name: str
    signals: dict[str, np.ndarray]  # [epochs, N]
    final_probs: np.ndarray  # [N, K], final model, un-augmented images (in-sample)
    oos_probs: np.ndarray | None = None  # [N, K], cross-fitted, when --folds >= 2
    final_labels: np.ndarray | None = None  # [N] what the method trained on at the end
    relabels: bool = False  # whether the method changes labels during training (SCN)
    relabel_events: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def probs(self) -> np.ndarray:
        """The probabilities the probability detectors read: out-of-sample when available."""
        return self.oos_probs if self.oos_probs is not None else self.final_probs


@dataclass
class Scores:
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # detector -> [N]
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # deciding detector -> [N] bool
    probs: np.ndarray | None = None  # [N, K] mean over methods
    ensemble_members: list[str] = field(default_factory=list)


def method_scores(ev: MethodEvidence, labels: np.ndarray) -> tuple[dict, dict]:
    m = ev.name
    scores = {
        f"{m}_loss": final_loss(ev.final_probs, labels),
        f"{m}_loss_mean": mean_loss(ev.signals["loss"]),
        f"{m}_aum": area_under_margin(ev.signals["margin"]),
        f"{m}_self_confidence": self_confidence(ev.probs, labels),
    }
    for signal, detector in SIGNAL_DETECTORS.items():
        if signal in ev.signals:
            scores[f"{m}_{signal}"] = detector(ev.signals[signal])
    cl_score, cl_flags = cleanlab_detector(ev.probs, labels)
    scores[f"{m}_cleanlab"] = cl_score
    flags = {f"{m}_cleanlab": cl_flags}
    if ev.relabels:
        scores[f"{m}_relabel"] = relabelled(ev.final_labels, labels)
        flags[f"{m}_relabel"] = scores[f"{m}_relabel"] > 0
    return scores, flags


def score_all(evidence: list[MethodEvidence], labels: np.ndarray) -> Scores:
    out = Scores()
    for ev in evidence:
        scores, flags = method_scores(ev, labels)
        out.scores |= scores
        out.flags |= flags
        members = ENSEMBLE_MEMBERS + (
            ENSEMBLE_MEMBERS_CROSS_FITTED if ev.oos_probs is not None else ()
        )
        out.ensemble_members += [f"{ev.name}_{d}" for d in members]
    out.probs = np.mean([ev.probs for ev in evidence], axis=0)
    suspicion = rank_average([out.scores[name] for name in out.ensemble_members])
    out.scores["suspicion"] = suspicion
    out.flags["suspicion"] = flag_top(suspicion, estimated_issue_count(out.probs, labels))
    return out
