"""One score per distinct ranking (`auditor.detectors.distinct`): the rule on hand-made scores,
then on the evidence of a real (tiny) training, with and without out-of-sample probabilities."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from auditor.detectors.distinct import distinct_scores, same_ranking
from auditor.evidence import MethodEvidence
from auditor.scoring import score_all


def p_given(n: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.01, 0.99, n)


def test_a_monotone_transform_is_grouped_and_the_preferred_name_kept():
    p = p_given()
    scores = {"ce_loss": -np.log(p), "ce_self_confidence": 1 - p, "ce_aum": p_given(seed=1)}
    kept, groups = distinct_scores(scores)
    assert list(kept) == ["ce_self_confidence", "ce_aum"]  # the given order, loss left out
    assert groups == {"ce_self_confidence": ["ce_loss"]}
    assert kept["ce_self_confidence"] is scores["ce_self_confidence"]


def test_a_near_identical_score_ordered_differently_is_not_grouped():
    a = np.linspace(0.0, 1.0, 200)
    b = a + 1e-9
    b[[50, 51]] = b[[51, 50]]  # one pair of neighbours the other way round
    assert not same_ranking(a, b)
    kept, groups = distinct_scores({"ce_self_confidence": a, "ce_loss": b})
    assert list(kept) == ["ce_self_confidence", "ce_loss"] and groups == {}


def test_ties_from_floating_point_are_the_same_ranking_but_a_constant_score_is_not():
    p = np.concatenate([p_given(), [1e-9, 2e-9, 3e-9]]).astype(np.float32)
    loss, confidence = -np.log(p), 1 - p  # float32: 1 - p ties the three smallest p
    assert len(np.unique(confidence)) < len(np.unique(loss))
    assert same_ranking(loss, confidence)
    assert not same_ranking(loss, np.zeros_like(loss))  # no discordant pair, but all ties


def test_protected_names_are_never_dropped():
    p = p_given()
    scores = {"ce_self_confidence": 1 - p, "ce_loss": -np.log(p), "suspicion": (1 - p) / 2}
    kept, groups = distinct_scores(scores, protect=["ce_loss", "suspicion"])
    assert list(kept) == ["ce_loss", "suspicion"]  # protection outranks the preference
    assert groups == {"ce_loss": ["ce_self_confidence"]}
    kept, groups = distinct_scores(scores, protect=["ce_self_confidence", "ce_loss", "suspicion"])
    assert list(kept) == list(scores) and groups == {}


def test_the_declared_preference_decides_which_name_stays():
    margin = p_given()
    scores = {
        "eac_cleanlab_both": margin,
        "eac_cleanlab": margin,
        "eac_normalized_margin": margin,
        "eac_loss_mean": p_given(seed=2),
        "eac_forgetting": 2 * p_given(seed=2),
    }
    kept, groups = distinct_scores(scores)
    assert list(kept) == ["eac_normalized_margin", "eac_loss_mean"]
    assert groups == {
        "eac_normalized_margin": ["eac_cleanlab", "eac_cleanlab_both"],  # in preference order
        "eac_loss_mean": ["eac_forgetting"],  # neither listed: the first given stays
    }
    # `audit score` names carry no method prefix
    kept, groups = distinct_scores({"cleanlab": margin, "normalized_margin": margin})
    assert list(kept) == ["normalized_margin"] and groups == {"normalized_margin": ["cleanlab"]}


@pytest.fixture(scope="module")
def tiny_ce():
    """A real CE training on 48 images of 3 classes (3 epochs, no test split), its evidence and
    2-fold cross-fitted probabilities."""
    from auditor.training.augment import Normalizer
    from auditor.training.crossfit import cross_fit
    from auditor.training.engine import TrainConfig, train
    from methods import build_method
    from methods.backbones import build_backbone

    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (48, 1, 16, 16), dtype=torch.uint8)
    labels = np.arange(48) % 3
    normalize, config = Normalizer.fit(pixels), TrainConfig(epochs=3, batch_size=16)

    def make(seed: int):
        torch.manual_seed(seed)
        return build_method("ce", build_backbone("resnet-small", 1), 3)

    evidence = train(make(0), pixels, torch.from_numpy(labels), None, None, normalize, config)
    # no early-learning reading: `probs` are the final model's, in-sample, as the loss's are
    evidence = replace(evidence, epoch_probs=None)
    oos = cross_fit(make, pixels, labels, normalize, config, folds=2)
    return evidence, oos, labels


def test_in_sample_loss_is_dropped_as_self_confidence_and_the_cleanlab_flags_stay(tiny_ce):
    evidence, _, labels = tiny_ce
    scores = score_all([evidence], labels, {"ce": None})
    assert "ce_loss" not in scores.scores and "ce_self_confidence" in scores.scores
    assert "ce_loss" in scores.rank_identical["ce_self_confidence"]
    filters = [
        "ce_cleanlab",
        "ce_cleanlab_both",
        "ce_cleanlab_confident_learning",
        "ce_predicted_neq_given",
    ]
    assert set(filters) <= set(scores.rank_identical["ce_normalized_margin"])
    assert set(filters) <= set(scores.flags) and not set(filters) & set(scores.scores)
    assert set(scores.ensemble_members) | {"suspicion"} <= set(scores.scores)


def test_with_out_of_sample_probabilities_the_final_loss_is_a_ranking_of_its_own(tiny_ce):
    evidence, oos, labels = tiny_ce
    crossfit = MethodEvidence(**{**vars(evidence), "oos_probs": oos})
    scores = score_all([crossfit], labels, {"ce": None})
    assert "ce_loss" in scores.scores
    assert not any("ce_loss" in dropped for dropped in scores.rank_identical.values())


def test_without_tolerance_the_rule_is_equal_average_ranks():
    """With ties allowed to differ on no pair, `same_ranking` is exactly equal
    `rankdata(..., method="average")`, on scores with many ties."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(300):
        a = rng.integers(0, 6, 12).astype(float)
        candidates = [np.exp(a), np.minimum(a, 3), rng.integers(0, 6, 12).astype(float)]
        b = candidates[rng.integers(len(candidates))]
        equal = np.array_equal(rankdata(a, method="average"), rankdata(b, method="average"))
        assert same_ranking(a, b, tie_tolerance=0) == equal
        outcomes.add(equal)
    assert outcomes == {True, False}
