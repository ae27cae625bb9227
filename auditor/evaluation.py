"""Detection metrics against a known noise mask, and the accuracy protocols of the FER papers."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def detection_metrics(
    score: np.ndarray | None, is_noisy: np.ndarray, flags: np.ndarray | None = None
) -> dict:
    """AUROC and average precision of `score` (higher = more suspect) for finding the noisy
    samples; precision@k with k = the true number of noisy samples; and, for a detector that
    flags, precision / recall / F1 of the flagged set and how many it flagged. Metrics that are
    undefined (one class only, or no score: a deciding detector whose score was dropped as
    rank-identical to another) are None."""
    is_noisy = np.asarray(is_noisy, dtype=bool)
    k = int(is_noisy.sum())
    both = score is not None and 0 < k < len(is_noisy)
    out = {
        "auroc": float(roc_auc_score(is_noisy, score)) if both else None,
        "ap": float(average_precision_score(is_noisy, score)) if both else None,
        "precision_at_k": precision_at_k(score, is_noisy) if score is not None and k else None,
    }
    if flags is not None:
        flags = np.asarray(flags, dtype=bool)
        tp = int((flags & is_noisy).sum())
        precision = tp / flags.sum() if flags.sum() else 0.0
        recall = tp / k if k else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out |= {"precision": precision, "recall": recall, "f1": f1, "flagged": int(flags.sum())}
    return out


def precision_at_k(score: np.ndarray, is_noisy: np.ndarray) -> float:
    """The share of noisy samples among the k highest scores, k = the number of noisy samples
    (ties by position)."""
    top = np.argsort(-np.asarray(score), kind="stable")[: int(is_noisy.sum())]
    return float(is_noisy[top].mean())


def evaluate_detectors(
    scores: dict[str, np.ndarray],
    flags: dict[str, np.ndarray],
    given: np.ndarray,
    true: np.ndarray | None,
) -> dict:
    """`detection_metrics` of every detector against given != true, the scored ones first, then
    those that only flag (their score dropped as rank-identical, `auditor.detectors.distinct`);
    {} when the truth is unknown."""
    if true is None:
        return {}
    mask = np.asarray(given) != np.asarray(true)
    names = [*scores, *(name for name in flags if name not in scores)]
    return {name: detection_metrics(scores.get(name), mask, flags.get(name)) for name in names}


def accuracy_protocols(per_epoch: list[float]) -> dict:
    """The three protocols of the papers: `last` (RUL), `best` (SCN), `last5_mean` (EAC)."""
    values = [v for v in per_epoch if not math.isnan(v)]
    if not values:
        return {"last": None, "best": None, "last5_mean": None, "per_epoch": []}
    return {
        "last": values[-1],
        "best": max(values),
        "last5_mean": float(np.mean(values[-5:])),
        "per_epoch": list(per_epoch),
    }
