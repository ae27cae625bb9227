"""Detectors that read class probabilities [N, K] and the given labels [N].

They are only sound on out-of-sample probabilities (K-fold cross-fitting, `--folds K`); on the
final model's in-sample probabilities they are weakened by memorisation."""

from __future__ import annotations

import numpy as np
from cleanlab.count import num_label_issues
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores


def given_probability(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return probs[np.arange(len(labels)), labels]


def final_loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """score = -log p(y|x) of the final model on the un-augmented image. Higher = more suspect."""
    return -np.log(np.clip(given_probability(probs, labels), 1e-12, None))


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """score = 1 - p(y|x) (cleanlab's self-confidence, negated). Higher = more suspect."""
    return 1.0 - given_probability(probs, labels)


def cleanlab_detector(
    probs: np.ndarray, labels: np.ndarray, *, filter_by: str = "prune_by_noise_rate"
) -> tuple[np.ndarray, np.ndarray]:
    """Confident learning (Northcutt et al., JAIR 2021) via `cleanlab.filter.find_label_issues`.

    Returns (score, flags): flags decide (`filter_by`, default prune_by_noise_rate);
    score = 1 - normalized margin, normalized margin = (p_y - max_{k != y} p_k + 1) / 2
    (cleanlab's `get_label_quality_scores(method="normalized_margin")`, negated).
    Higher = more suspect."""
    flags = find_label_issues(labels, probs, filter_by=filter_by)
    score = 1.0 - get_label_quality_scores(labels, probs, method="normalized_margin")
    return score, flags


def estimated_issue_count(probs: np.ndarray, labels: np.ndarray) -> int:
    """How many labels confident learning estimates are wrong (`cleanlab.count.num_label_issues`)."""
    return int(num_label_issues(labels, probs))
