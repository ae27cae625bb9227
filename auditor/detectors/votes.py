"""How many detectors vote for each sample (`audit review`'s `detector_votes` and its
`detectors-split` view): every detector that votes (`auditor.detectors.registry.voting`: all but
those declared `votes=False`) puts its k most suspect samples forward, k = the number the
ensemble flags; and which detectors get a `top-` view."""

from __future__ import annotations

import numpy as np
import pandas as pd

from auditor.detectors.registry import voting


def voting_columns(samples: pd.DataFrame) -> list[str]:
    """The `score_<name>` columns of the detectors that vote (`voting`): all but those of
    detectors declared `votes=False`."""
    return [c for c in samples.columns if c.startswith("score_") and voting(c[len("score_") :])]


def detector_votes(samples: pd.DataFrame) -> tuple[np.ndarray, int]:
    """(for each sample, how many voting detectors rank it in their top k; the number of voting
    detectors), k = the number of samples the ensemble flags (at least 1)."""
    score_columns = voting_columns(samples)
    k = max(int(samples["flag_suspicion"].sum()), 1)
    votes = np.zeros(len(samples), dtype=np.int64)
    for column in score_columns:
        order = np.argsort(-samples[column].fillna(-np.inf).to_numpy(), kind="stable")
        votes[order[:k]] += 1
    return votes, len(score_columns)


def top_view_detectors(samples: pd.DataFrame, metrics: dict) -> list[str]:
    """The detectors `audit review` gives a `top-` view: the ensemble's members (metrics.json
    `ensemble.members`) that have a score column, else (a run without them) every voting one."""
    members = (metrics.get("ensemble") or {}).get("members")
    if members:
        return [m for m in members if f"score_{m}" in samples]
    return [c[len("score_") :] for c in voting_columns(samples)]
