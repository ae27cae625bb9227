"""The ensemble chooses its members from the noise structure it estimates (never the truth),
flags the mean of two estimates of the number of label errors (the median of three with the
frozen features' estimate; a loss mixture whose components overlap left out, one whose
components lie clearly apart counting alone), and says what it decided."""

import numpy as np
import pytest

from auditor.detectors.probabilities import estimated_issue_count
from auditor.ensemble_members import (
    CONCENTRATED_MEMBERS,
    ENSEMBLE_MEMBERS,
    confusion_structure,
    frozen_members,
    memorised_members,
)
from auditor.evidence import FROZEN, MethodEvidence
from auditor.flag_count import flag_count
from auditor.scoring import Scores, score_all, trusted_sentences

K, N = 4, 400


def confident_probs(predicted: np.ndarray) -> np.ndarray:
    probs = np.full((len(predicted), K), 0.05)
    probs[np.arange(len(predicted)), predicted] = 1 - 0.05 * (K - 1)
    return probs


def noisy(flip) -> tuple[np.ndarray, np.ndarray]:
    """(given, true): every 3rd sample (a third of each class) given `flip(true)`."""
    true = np.arange(N) % K
    given = true.copy()
    given[::3] = flip(true[::3])
    return given, true


def spread(t: np.ndarray) -> np.ndarray:
    """Symmetric noise: each flipped label to one of the K - 1 other classes in turn."""
    return (t + 1 + np.arange(len(t)) % (K - 1)) % K


def test_confusion_structure_reads_how_concentrated_the_confusions_are():
    given, true = noisy(lambda t: (t + 1) % K)  # a flip y -> y + 1: K cells, one way
    assert confusion_structure(confident_probs(true), given) == pytest.approx((1.0, 134 / N))
    given, true = noisy(lambda t: t ^ 1)  # 0 <-> 1, 2 <-> 3: K cells, both ways
    assert confusion_structure(confident_probs(true), given)[0] == pytest.approx(1.0)
    given, true = noisy(spread)  # every other class in turn: 12 cells
    assert confusion_structure(confident_probs(true), given)[0] < 0.5
    assert confusion_structure(confident_probs(given), given) == (0.0, 0.0)  # nothing confused


def evidence(given: np.ndarray, true: np.ndarray) -> MethodEvidence:
    rng = np.random.default_rng(0)
    signals = {
        s: rng.random((3, N)).astype(np.float32) for s in ("loss", "margin", "correct", "p_given")
    }
    probs = confident_probs(true) * 0.9 + 0.1 * rng.dirichlet(np.ones(K), N)
    return MethodEvidence(
        name="ce",
        signals=signals,
        final_probs=probs,
        embeddings=rng.normal(size=(N, 8)).astype(np.float32),
        best_probs=probs,
        best_epoch=2,
    )


@pytest.mark.parametrize(
    ("flip", "members"),
    [
        (lambda t: (t + 1) % K, CONCENTRATED_MEMBERS),
        (lambda t: t ^ 1, CONCENTRATED_MEMBERS),
        (spread, ENSEMBLE_MEMBERS),
    ],
)
def test_members_follow_the_estimated_structure(flip, members):
    given, true = noisy(flip)
    scores = score_all([evidence(given, true)], given, {"ce": 0.8})
    assert scores.ensemble_members == [f"ce_{d}" for d in members]
    text = "\n".join(scores.decisions)
    assert (
        "most confused class pairs" in text
        and "epoch 2 of 3" in text
        and "trusts ce (0.800)" in text
    )
    # flagged: the rounded mean of confident learning's estimate and the loss mixture's, when
    # the mixture's components separate (here a random loss: its D falls either side of 2)
    assert "flags the" in scores.decisions[-1]
    estimates = scores.flag_estimates
    assert set(estimates) == {"confident_learning", "loss_mixture_ce"}
    assert f"confident learning's {estimates['confident_learning']}" in scores.decisions[-1]
    assert f"ce's loss mixture's {estimates['loss_mixture_ce']}" in scores.decisions[-1]
    counted = [estimates["confident_learning"]]
    if scores.mixture_separation["loss_mixture_ce"] > 2:
        counted.append(estimates["loss_mixture_ce"])
    assert scores.flags["suspicion"].sum() == round(np.mean(counted))


def test_the_flag_count_is_the_median_of_one_estimate_per_kind_of_evidence():
    """Confident learning's count, the loss mixtures' mean and the frozen features' count: the
    median of the three, so one estimator that fails (here the frozen one, far above) is left
    out; the loss mixtures of two methods count as one kind."""
    given, true = noisy(spread)
    probs = confident_probs(true)
    counted = estimated_issue_count(probs, given)
    scores = Scores({"a": np.arange(N, dtype=float)}, {}, probs, ["a"])
    scores.finish(given, {"ce": counted - 40, "eac": counted}, None, frozen_estimate=N)
    assert scores.flags["suspicion"].sum() == counted  # the median of counted, counted - 20, N
    assert scores.flag_estimates == {
        "confident_learning": counted,
        "loss_mixture_ce": counted - 40,
        "loss_mixture_eac": counted,
        "confident_learning_frozen": N,
    }
    assert scores.decisions[-1].startswith(f"flags the {counted} most suspect: the median of")
    assert f"confident learning's on the frozen features {N}" in scores.decisions[-1]
    # score_all reads the frozen features' estimate from their evidence
    frozen = MethodEvidence(
        name=FROZEN,
        signals={},
        final_probs=confident_probs(given),
        oos_probs=confident_probs(given),
        embeddings=np.zeros((N, 2), dtype=np.float32),
    )
    scored = score_all([evidence(given, true), frozen], given, {"ce": 0.8, FROZEN: 0.7})
    assert scored.flag_estimates["confident_learning_frozen"] == 0  # it fits the given labels
    kinds = [scored.flag_estimates["confident_learning"], 0]
    if scored.mixture_separation["loss_mixture_ce"] > 2:
        kinds.append(scored.flag_estimates["loss_mixture_ce"])
    assert scored.flags["suspicion"].sum() == round(np.median(kinds))
    # trusted, it votes with its margin and its neighbours (no training dynamics to vote)
    joined = score_all([evidence(given, true), frozen], given, {"ce": 0.8, FROZEN: 0.8})
    frozen_votes = [m for m in joined.ensemble_members if m.startswith(f"{FROZEN}_")]
    assert frozen_votes == [f"{FROZEN}_normalized_margin", f"{FROZEN}_knn"]
    assert frozen_members(ENSEMBLE_MEMBERS) == ("aum", "normalized_margin", "knn")
    assert frozen_members(CONCENTRATED_MEMBERS) == CONCENTRATED_MEMBERS


def test_trust_decision_in_words():
    assert trusted_sentences({"ce": 0.8, "eac": 0.7}, ["ce"]) == [
        "trusts ce (0.800); leaves out eac (0.700): test accuracy (last-5 mean) more than 0.02 "
        "below the best"
    ]
    assert "no test or validation split" in trusted_sentences({"ce": None}, ["ce"])[0]


@pytest.mark.parametrize(
    ("flip", "members", "said"),
    [
        (spread, ["ce_aum", "ce_normalized_margin"], ["self-confidence", "kNN vote"]),
        (lambda t: (t + 1) % K, ["ce_aum", "ce_confident_disagreement"], []),
    ],
)
def test_a_method_that_memorised_votes_with_its_training_dynamics_not_its_neighbours(
    flip, members, said
):
    assert memorised_members(ENSEMBLE_MEMBERS) == ("aum", "normalized_margin")
    assert memorised_members(CONCENTRATED_MEMBERS) == ("aum", "confident_disagreement")
    given, true = noisy(flip)
    ev = evidence(given, true)
    epochs = 8
    fit = np.array([0.3, 0.5, 0.6, 0.65, 0.8, 0.9, 0.95, 1.0])  # past 2/3 and past 0.6 + 0.1
    rng = np.random.default_rng(1)
    ev.signals = {
        "correct": (rng.random((epochs, N)) < fit[:, None]).astype(np.float32),
        "loss": np.where(given != true, 3.0, 0.1)[None, :].repeat(epochs, 0),  # a third noisy
        "margin": rng.random((epochs, N)).astype(np.float32),
        "p_given": rng.random((epochs, N)).astype(np.float32),
    }
    ev.epoch_probs = np.repeat(ev.best_probs[None].astype(np.float16), epochs, axis=0)
    ev.epoch_accuracy = [0.3, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    scores = score_all([ev], given, {"ce": 0.6})
    assert scores.ensemble_members == members
    decision = next(d for d in scores.decisions if d.startswith("ce memorised: "))
    # it names what changed among the members it has: no self-confidence or kNN to replace
    assert [w for w in ("self-confidence", "kNN vote") if w in decision] == said
    assert scores.early_learning["ce"]["onset"] == 5
    assert scores.early_learning["ce"]["count_first"] == scores.early_learning["ce"]["count_last"]
    assert scores.early_learning["ce"]["count_first"] == 2
    assert any(d.startswith("ce memorised: its training dynamics") for d in scores.decisions)
    assert any("averaged over epochs 3-4" in d for d in scores.decisions)
    assert any("the count of wrong labels over epoch 2, before" in d for d in scores.decisions)


def test_a_loss_mixture_whose_components_overlap_does_not_count():
    """Ashman's D at or below 2: the estimate is reported and left out of the count, with the
    reason; above 2 it counts (here the mean of two kinds)."""
    overlapping = flag_count(100, {"ce": 300}, {"ce": 1.5})
    assert overlapping.n == 100 and overlapping.estimates == {
        "confident_learning": 100,
        "loss_mixture_ce": 300,
    }
    assert overlapping.separation == {"loss_mixture_ce": 1.5}
    assert "the one estimate of the number of label errors that counts" in overlapping.decision
    assert "ce's loss mixture's 300 (left out: its components overlap, Ashman's D 1.50 <= 2)" in (
        overlapping.decision
    )
    assert "they disagree, the largest 3.0 times the smallest" in overlapping.decision
    assert flag_count(100, {"ce": 300}, {"ce": 2.5}).n == 200
    # per method: the separated mixtures' mean is one kind, beside confident learning and frozen
    mixed = flag_count(120, {"ce": 300, "eac": 100}, {"ce": 1.0, "eac": 2.8}, frozen_estimate=160)
    assert mixed.n == 120 and "eac's loss mixture's 100," in mixed.decision
    # at the bound, and as reported (2 decimals): left out; without a separation read: counted
    assert flag_count(100, {"ce": 300}, {"ce": 2.0}).n == 100
    assert flag_count(100, {"ce": 300}, {"ce": 2.004}).separation == {"loss_mixture_ce": 2.0}
    assert flag_count(100, {"ce": 300}, {"ce": 2.004}).n == 100
    assert flag_count(100, {"ce": 300}, {}).n == 200


def test_a_loss_mixture_whose_components_lie_clearly_apart_counts_alone():
    """Ashman's D at least 3 (as reported, 2 decimals): that mixture's estimate is the count,
    confident learning's and the frozen features' are reported beside it; two such mixtures
    count their mean; below 3 the median of the kinds as before."""
    clear = flag_count(300, {"ce": 500}, {"ce": 3.4}, frozen_estimate=320)
    assert clear.n == 500 and clear.estimates["confident_learning"] == 300
    assert clear.decision.startswith(
        "flags the 500 most suspect: the loss mixture whose components lie clearly apart "
        "(Ashman's D >= 3) counts alone (confident learning's 300, ce's loss mixture's 500 "
        "(its components clearly apart, Ashman's D 3.40)"
    )
    assert "they disagree, the largest 1.7 times the smallest" in clear.decision
    both = flag_count(
        300, {"ce": 500, "eac": 400, "gsmc": 100}, {"ce": 3.0, "eac": 3.2, "gsmc": 2.5}
    )
    assert both.n == 450 and "mixtures whose components lie clearly apart" in both.decision
    assert flag_count(300, {"ce": 500}, {"ce": 2.996}).n == 500  # 3.00 as reported
    assert flag_count(300, {"ce": 500}, {"ce": 2.99}).n == 400
