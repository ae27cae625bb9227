"""One score per distinct ranking: detectors that order the samples identically are kept once.

Several detectors are the same ranking under another name: the four cleanlab detectors score
with `normalized_margin` itself (they differ only in their flags), and on the final model's
in-sample probabilities `loss` = -log p(given) is a monotone transform of `self_confidence` =
1 - p(given). Kept twice, such a ranking counts twice in `detector_votes` (`audit review`), has
two identical `top-` views, and makes a comparison of detectors look wider than it is. Which
scores coincide depends on the run (with `--folds K` the probability detectors read
out-of-sample probabilities and `loss`, still the final model's, is then a ranking of its own),
so the groups are found from the scores of each run, never from a list.

The rule: two scores rank identically when no pair of samples is ordered one way by one score
and the other way by the other (no discordant pair), and the pairs of samples that one score
ties and the other separates are at most `TIE_TOLERANCE` of all pairs. With a tolerance of 0
this is exactly equal average ranks (`scipy.stats.rankdata(..., method="average")`), which a
strictly increasing transform such as -log(1 - x) keeps. The tolerance is for floating point,
not for a different order: the same ranking computed by two formulas in float32 ties
different samples (1 - p rounds small p(given) to one value that -log p still separates; the
clip of `loss` at 1e-12 does the reverse), and a single pair ordered the other way makes two
rankings different. Each group keeps one name (by `PREFERENCE`), and every
protected name; the rest of the group's scores are dropped. Deciding detectors keep their flags
whether their score is kept or not (the caller keeps the flags).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from auditor.detectors.registry import detector_of

# Which name a group keeps, most preferred first (by detector, whatever the method prefix):
# cleanlab's two rankings under their own names (self-confidence, an ensemble member, before
# normalized margin), then the in-sample loss, then the deciding cleanlab filters, whose flags
# stay in any case. Detectors not listed come after, in the order the scores are given (the
# registration order in a run).
PREFERENCE = (
    "self_confidence",
    "normalized_margin",
    "loss",
    "cleanlab",
    "cleanlab_both",
    "cleanlab_confident_learning",
    "predicted_neq_given",
)
TIE_TOLERANCE = 1e-3  # share of all pairs that one score may tie and the other separate
SCREEN = 2048  # samples of the quick necessary check before the full one


def tied_pairs(equal_to_previous: np.ndarray) -> int:
    """Pairs of tied items in a sorted sequence, from `equal_to_previous[i]` = item i + 1
    equals item i: the sum over runs of equal items of m (m - 1) / 2."""
    run = np.concatenate([[0], np.cumsum(~equal_to_previous)])
    sizes = np.bincount(run).astype(np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def discordant(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether some pair of samples is ordered a_i < a_j by `a` and b_i > b_j by `b`: sorted by
    a, then by b among ties of a, b must never decrease. A NaN counts as discordant."""
    order = np.lexsort((b, a))
    return not bool(np.all(np.diff(b[order]) >= 0))


def tie_disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """The share of all pairs of samples that one score ties and the other separates."""
    n = len(a)
    if n < 2:
        return 0.0
    order = np.lexsort((b, a))
    same_a, same_b = np.diff(a[order]) == 0, np.diff(b[order]) == 0
    only_a = tied_pairs(same_a) - tied_pairs(same_a & same_b)
    only_b = tied_pairs(np.diff(np.sort(b)) == 0) - tied_pairs(same_a & same_b)
    return (only_a + only_b) / (n * (n - 1) / 2)


def same_ranking(a: np.ndarray, b: np.ndarray, tie_tolerance: float = TIE_TOLERANCE) -> bool:
    """The rule of the module: no discordant pair, and ties that differ on at most
    `tie_tolerance` of the pairs. First checked on an evenly spaced subset of SCREEN samples
    (necessary: a discordant pair there is one in the whole), which rejects different rankings
    cheaply."""
    a, b = np.asarray(a), np.asarray(b)
    subset = np.linspace(0, len(a) - 1, min(len(a), SCREEN)).astype(np.int64)
    if discordant(a[subset], b[subset]) or discordant(a, b):
        return False
    return tie_disagreement(a, b) <= tie_tolerance


def preference_rank(name: str, preference: tuple[str, ...]) -> int:
    """The position of `name`'s detector in `preference`; len(preference) when not listed."""
    detector = detector_of(name)
    return preference.index(detector) if detector in preference else len(preference)


def distinct_scores(
    scores: dict[str, np.ndarray],
    protect: Iterable[str] = (),
    preference: tuple[str, ...] = PREFERENCE,
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """(the kept scores, in their given order; {kept name: [dropped names]}) under the module's
    rule. Names are visited protected first, then by `preference`, then in the given order;
    each joins the group of the first kept name it ranks identically with, else is kept. A
    protected name is always kept (never joins a group), so a group keeps its protected
    names, or else its most preferred one. Every score is higher = more suspect; dropping one
    changes no other."""
    protected = set(protect)
    position = {name: i for i, name in enumerate(scores)}

    def visit_order(name: str) -> tuple[bool, int, int]:
        return name not in protected, preference_rank(name, preference), position[name]

    kept: list[str] = []
    groups: dict[str, list[str]] = {}
    for name in sorted(scores, key=visit_order):
        same = None
        if name not in protected:
            same = next((k for k in kept if same_ranking(scores[k], scores[name])), None)
        if same is None:
            kept.append(name)
        else:
            groups.setdefault(same, []).append(name)
    ordered = {k: groups[k] for k in sorted(groups, key=position.get)}
    return {n: s for n, s in scores.items() if n in kept}, ordered
