"""The ensemble suspicion: one score in [0, 1] from several detectors.

suspicion_i = mean over member detectors d of rank_d(i) / (N - 1), where rank_d is the
position of sample i when detector d's scores are sorted ascending (ties share their mean
rank). Rank averaging needs no calibration between detectors whose scores live on different
scales (a loss, a margin, a CAM distance). Higher = more suspect; 1 = the most suspect sample
of every member.

It decides too: the top `n` samples by suspicion are flagged, with `n` the number of label
errors confident learning estimates from the probabilities (`estimated_issue_count`).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def rank_average(scores: list[np.ndarray]) -> np.ndarray:
    if not scores:
        raise ValueError("the ensemble needs at least one detector")
    n = len(scores[0])
    if n < 2:
        return np.zeros(n)
    ranks = [(rankdata(s, method="average") - 1) / (n - 1) for s in scores]
    return np.mean(ranks, axis=0)


def flag_top(score: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of the `n` highest scores (ties broken by position, stable)."""
    flags = np.zeros(len(score), dtype=bool)
    if n > 0:
        flags[np.argsort(-score, kind="stable")[:n]] = True
    return flags
