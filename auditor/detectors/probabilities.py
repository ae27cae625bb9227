"""Detectors that read class probabilities [N, K] and the given labels [N].

They are only sound on out-of-sample probabilities (K-fold cross-fitting, `--folds K`); on the
final model's in-sample probabilities they are weakened by memorisation."""

from __future__ import annotations

from functools import partial

import numpy as np

from auditor.detectors.registry import DETECTORS, detector, run_detector

# cleanlab's `filter_by` for each of our deciding detectors (`audit score` names them so)
CLEANLAB_FILTERS = {
    "cleanlab": "prune_by_noise_rate",
    "cleanlab_both": "both",
    "cleanlab_confident_learning": "confident_learning",
    "predicted_neq_given": "predicted_neq_given",
}


def given_probability(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return probs[np.arange(len(labels)), labels]


@detector("loss", reads=("final_probs", "labels"))
def final_loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """score = -log p(y|x) of the final model on the un-augmented image. Higher = more suspect."""
    return -np.log(np.clip(given_probability(probs, labels), 1e-12, None))


@detector("self_confidence", reads=("probs", "labels"))
def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """score = 1 - p(y|x) (cleanlab's self-confidence, negated). Higher = more suspect."""
    return 1.0 - given_probability(probs, labels)


@detector("normalized_margin", reads=("probs", "labels"))
def normalized_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """score = 1 - (p_y - max_{k != y} p_k + 1) / 2 (cleanlab's normalized margin, negated),
    in [0, 1]. Higher = more suspect."""
    p_given = given_probability(probs, labels)
    others = probs.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    return 1.0 - (p_given - others.max(axis=1) + 1.0) / 2.0


@detector("mistakenness", reads=("probs", "labels"))
def mistakenness(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """FiftyOne Brain's mistakenness for classifications: m = +1 if argmax p != given else -1;
    c = exp(-entropy(p)) (natural log); score = (m * c + 1) / 2 in [0, 1]. Higher = a confident
    prediction that disagrees with the label (suspect); lower = a confident agreement."""
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
    m = np.where(probs.argmax(axis=1) != labels, 1.0, -1.0)
    return (m * np.exp(-entropy) + 1.0) / 2.0


@detector("confident_disagreement", reads=("probs", "labels"))
def confident_disagreement(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mistakenness where the model disagrees with the label, the normalized margin where it
    agrees: score = (1 + exp(-entropy(p))) / 2 when argmax p != given (FiftyOne Brain's
    mistakenness there), else 1 - (p_y - max_{k != y} p_k + 1) / 2 (cleanlab's normalized
    margin, negated). In [0, 1], higher = more suspect; both halves meet at 0.5, so every
    disagreement ranks above every agreement, as in both parents. The parents differ only
    inside each half. Among the agreements a wrong label shows as a close runner-up class,
    which the margin reads and the entropy blurs with doubt between unrelated classes (AUROC
    there 0.78-0.89 against 0.64-0.83, two-way swaps on the demo and synthetic faces, 3 seeds).
    Among the disagreements it depends on the data: under swaps on the demo the wrong labels
    are the predictions the model is sure of and its own mistakes are unsure (0.54-0.69 by
    certainty, 0.49-0.60 by the margin); a weak 7-class face model is often sure of its own
    mistakes, and there the margin separates better (0.63-0.73 against 0.42-0.59). As the
    ensemble's member under concentrated confusions it was measured against the mean rank of
    the two parents (bench/detection.py, mean AP): +0.030 to +0.043 on four two-way swap
    cells, +0.004 and +0.009 on two pair-noise cells, -0.004 and -0.002 on two synthetic-faces
    cells read as concentrated (human-fer, symmetric); three of those cells (demo-short-swap,
    synth-faces-long-pair and -symmetric) were collected after the rule was chosen."""
    disagrees = probs.argmax(axis=1) != labels
    return np.where(disagrees, mistakenness(probs, labels), normalized_margin(probs, labels))


def cleanlab_flags(probs: np.ndarray, labels: np.ndarray, filter_by: str) -> np.ndarray:
    """Confident learning (Northcutt et al., JAIR 2021): `cleanlab.filter.find_label_issues`
    with `filter_by` in prune_by_noise_rate (cleanlab's default), both, confident_learning,
    predicted_neq_given. Boolean [N], True = label issue. In this process (`n_jobs=1`): cleanlab's
    forked worker pool can hang at shutdown in a process that already runs threads (seen here
    on a resumed run), and on these sizes it gains nothing."""
    from cleanlab.filter import find_label_issues  # imported when used: option checks stay quick

    return find_label_issues(labels, probs, filter_by=filter_by, n_jobs=1)


def cleanlab_detector(
    probs: np.ndarray, labels: np.ndarray, *, filter_by: str = "prune_by_noise_rate"
) -> tuple[np.ndarray, np.ndarray]:
    """(score, flags): flags from `cleanlab_flags`, score = `normalized_margin` (cleanlab's own
    ranking of label issues). Higher = more suspect."""
    return normalized_margin(probs, labels), cleanlab_flags(probs, labels, filter_by)


for _name, _filter_by in CLEANLAB_FILTERS.items():
    detector(_name, reads=("probs", "labels"), decides=True)(
        partial(cleanlab_detector, filter_by=_filter_by)
    )


def estimated_issue_count(probs: np.ndarray, labels: np.ndarray) -> int:
    """How many labels confident learning estimates are wrong
    (`cleanlab.count.num_label_issues`)."""
    from cleanlab.count import num_label_issues

    return int(num_label_issues(labels, probs))


def probability_detectors(probs: np.ndarray, labels: np.ndarray) -> tuple[dict, dict]:
    """Every registered detector that reads only `probs` and `labels`: ({name: score},
    {name: flags}), what `audit score` writes (`cleanlab` is prune_by_noise_rate)."""
    scores, flags = {}, {}
    for d in DETECTORS.values():
        if d.reads == ("probs", "labels"):
            scores[d.name], flag = run_detector(d, [probs, labels])
            if flag is not None:
                flags[d.name] = flag
    return scores, flags
