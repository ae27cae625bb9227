import numpy as np
import pytest
import torch

from auditor.detectors.dynamics import (
    area_under_margin,
    ashman_d,
    cartography_confidence,
    cartography_variability,
    forgetting_events,
    loss_gmm,
    loss_mixture,
    mean_flip_cam,
    mean_loss,
)
from auditor.detectors.ensemble import flag_top, rank_average
from auditor.detectors.neighbours import knn_label_disagreement
from auditor.detectors.probabilities import (
    cleanlab_detector,
    confident_disagreement,
    final_loss,
    mistakenness,
    normalized_margin,
    self_confidence,
)
from auditor.evaluation import accuracy_protocols, detection_metrics
from auditor.training.signals import common_signals, logit_margin


def test_common_signals_by_hand():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    y = torch.tensor([0, 2])
    s = common_signals(logits, y)
    assert s["margin"].tolist() == [1.0, -3.0]  # 2 - 1; 0 - 3
    p0 = np.exp(2) / (np.exp(2) + 1 + np.exp(1))
    assert s["p_given"][0].item() == pytest.approx(p0, rel=1e-6)
    assert s["loss"][0].item() == pytest.approx(-np.log(p0), rel=1e-6)
    assert s["correct"].tolist() == [1.0, 0.0]


def test_logit_margin_with_ties():
    assert logit_margin(torch.tensor([[1.0, 1.0]]), torch.tensor([0])).tolist() == [0.0]


def test_dynamics_detectors_direction():
    loss = np.array([[0.1, 2.0], [0.3, 1.0]])  # [epochs, N]
    margin = np.array([[3.0, -1.0], [1.0, -2.0]])
    assert mean_loss(loss).tolist() == pytest.approx([0.2, 1.5])
    assert area_under_margin(margin).tolist() == [-2.0, 1.5]  # negated: sample 1 more suspect
    assert mean_flip_cam(np.array([[1.0], [3.0]])).tolist() == [2.0]


def test_probability_detectors_direction():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    labels = np.array([0, 0])
    assert self_confidence(probs, labels).tolist() == pytest.approx([0.1, 0.8])
    assert final_loss(probs, labels).tolist() == pytest.approx([-np.log(0.9), -np.log(0.2)])


def test_cleanlab_flags_confident_disagreements():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 600)
    given = true.copy()
    flipped = rng.random(600) < 0.2
    given[flipped] = (true[flipped] + 1) % 3
    probs = np.full((600, 3), 0.05)
    probs[np.arange(600), true] = 0.9
    score, flags = cleanlab_detector(probs, given)
    assert flags.dtype == bool
    assert (flags == flipped).mean() > 0.95
    assert score[flipped].min() > score[~flipped].max()


def test_rank_average_and_flags():
    a = np.array([0.0, 1.0, 2.0, 3.0])
    b = np.array([30.0, 20.0, 10.0, 40.0])
    s = rank_average([a, b])
    # ranks/(n-1): a -> 0, 1/3, 2/3, 1; b -> 2/3, 1/3, 0, 1
    assert s.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    assert flag_top(s, 1).tolist() == [False, False, False, True]
    assert flag_top(s, 0).sum() == 0


def test_detection_metrics_by_hand():
    score = np.array([0.9, 0.8, 0.3, 0.1])
    noisy = np.array([True, False, True, False])
    flags = np.array([True, True, False, False])
    m = detection_metrics(score, noisy, flags)
    assert m["auroc"] == pytest.approx(
        0.75
    )  # pairs (noisy, clean): 0.9>0.8, 0.9>0.1, 0.3<0.8, 0.3>0.1
    assert m["precision_at_k"] == pytest.approx(0.5)  # k = 2: top two are 0.9 (noisy), 0.8 (clean)
    assert (m["precision"], m["recall"], m["f1"], m["flagged"]) == (0.5, 0.5, 0.5, 2)
    assert detection_metrics(score, np.zeros(4, bool))["auroc"] is None


def test_accuracy_protocols():
    acc = accuracy_protocols([0.1, 0.5, 0.4, 0.6, 0.3, 0.2, 0.7])
    assert acc["last"] == 0.7 and acc["best"] == 0.7
    assert acc["last5_mean"] == pytest.approx((0.4 + 0.6 + 0.3 + 0.2 + 0.7) / 5)
    assert accuracy_protocols([])["last"] is None


def test_normalized_margin_and_mistakenness_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    labels = np.array([0, 0])
    # row 0: 1 - (0.7 - 0.2 + 1) / 2 = 0.25; row 1: 1 - (0.1 - 0.6 + 1) / 2 = 0.75
    assert normalized_margin(probs, labels).tolist() == pytest.approx([0.25, 0.75])
    entropy = -(probs * np.log(probs)).sum(axis=1)
    c = np.exp(-entropy)
    # row 0 agrees with its label (m = -1), row 1 does not (m = +1)
    assert mistakenness(probs, labels).tolist() == pytest.approx([(1 - c[0]) / 2, (1 + c[1]) / 2])


def test_confident_disagreement_by_hand():
    # row 0 agrees (0.7 > 0.2): the margin's 1 - (0.7 - 0.2 + 1) / 2 = 0.25;
    # rows 1 and 2 disagree: (1 + exp(-H)) / 2, the surer prediction (row 2) more suspect
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.05, 0.9, 0.05]])
    labels = np.array([0, 0, 0])
    c = np.exp((probs * np.log(probs)).sum(axis=1))
    expected = [0.25, (1 + c[1]) / 2, (1 + c[2]) / 2]
    assert confident_disagreement(probs, labels).tolist() == pytest.approx(expected)
    # two disagreements the parents order differently: A is sure of its own answer, B splits
    # its doubt between two other classes and gives the label less; the margin puts B first
    # (0.725 against 0.695), certainty puts A first
    a_b = np.array([[0.3, 0.69, 0.01], [0.05, 0.5, 0.45]])
    by_margin = normalized_margin(a_b, np.array([0, 0]))
    by_certainty = confident_disagreement(a_b, np.array([0, 0]))
    assert by_margin.tolist() == pytest.approx([0.695, 0.725])
    assert by_certainty[0] > by_certainty[1] > 0.5


def test_forgetting_events_by_hand():
    correct = np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0], [0, 0, 0, 1]])  # [epochs, N]
    # sample 0: 1,0,1,0 -> 2 forgettings; 1: never correct -> epochs (4); 2: 1,1,1,0 -> 1;
    # 3: 0,1,0,1 -> 1
    assert forgetting_events(correct).tolist() == [2.0, 4.0, 1.0, 1.0]


def test_cartography_by_hand():
    p = np.array([[0.9, 0.2], [0.7, 0.4]])
    assert cartography_confidence(p).tolist() == pytest.approx([0.2, 0.7])
    assert cartography_variability(p).tolist() == pytest.approx([0.1, 0.1])


def test_loss_gmm_posterior_separates_two_loss_modes():
    rng = np.random.default_rng(0)
    loss = np.concatenate([rng.normal(0.2, 0.05, 900), rng.normal(2.0, 0.2, 100)])[None, :]
    score, flags = loss_gmm(np.repeat(loss, 3, axis=0))
    assert flags[900:].all() and not flags[:900].any()
    assert score[900:].min() > 0.9 and score[:900].max() < 0.1


def test_ashman_d_by_hand():
    # sqrt(2) * |0 - 1| / sqrt(0.25 + 0.25) = 2; sqrt(2) * 0.6 / sqrt(0.09) = 2.828...
    assert ashman_d(np.array([0.0, 1.0]), np.array([0.25, 0.25])) == pytest.approx(2.0)
    assert ashman_d(np.array([0.8, 0.2]), np.array([0.01, 0.08])) == pytest.approx(2.0**0.5 * 2)


def test_loss_mixture_separation_tells_two_loss_modes_from_one():
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(0.2, 0.05, 900), rng.normal(2.0, 0.2, 100)])[None, :]
    one = rng.normal(1.0, 0.3, 1000)[None, :]
    posterior, separated = loss_mixture(np.repeat(two, 3, axis=0))
    assert separated > 2.0 and (posterior > 0.5).sum() == 100
    assert loss_mixture(one)[1] < 2.0


def test_knn_disagreement_by_hand():
    # two tight clusters; sample 3 sits in cluster A with the label of cluster B
    emb = np.array(
        [[1, 0], [0.99, 0.1], [0.98, -0.1], [1, 0.05], [0, 1], [0.1, 0.99], [-0.1, 0.98]]
    )
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    score = knn_label_disagreement(emb, labels, k=2)
    assert score[3] == pytest.approx(1.0)  # both neighbours disagree
    assert 0.4 < score[0] < 0.6  # one of its two neighbours is sample 3
    assert score[4:].max() == pytest.approx(0.0)
    # the approximate (inverted-file) path finds the same neighbours on easy data
    approx = knn_label_disagreement(emb, labels, k=2, exact_up_to=3, n_probe=3)
    assert np.allclose(approx, score)


def test_approximate_neighbours_agree_with_exact_ones():
    from auditor.detectors.neighbours import approximate_neighbours, exact_neighbours

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32))
    x = torch.nn.functional.normalize(
        torch.tensor(
            centres[rng.integers(0, 20, 4000)] + rng.normal(0, 0.3, (4000, 32)), dtype=torch.float32
        ),
        dim=1,
    )
    _, exact = exact_neighbours(x, 10)
    _, approx = approximate_neighbours(x, 10, n_probe=8)
    recall = np.mean(
        [len(set(a.tolist()) & set(e.tolist())) / 10 for a, e in zip(approx, exact, strict=True)]
    )
    assert recall > 0.9


def test_trusted_methods_for_the_ensemble():
    from auditor.scoring import trusted_methods

    assert trusted_methods({"ce": 0.76, "eac": 0.62, "scn": 0.77, "gsmc": 0.771}) == [
        "ce",
        "scn",
        "gsmc",
    ]
    assert trusted_methods({"ce": None, "eac": None}) == ["ce", "eac"]  # no test split: all


def test_aum_threshold_rule_by_hand():
    from auditor.detectors.dynamics import aum_threshold_flags
    from auditor.training.aum_threshold import threshold_subsets

    aum = np.array([2.0, -1.0, 0.5, -3.0, -2.0, 1.0])
    fake = np.array([False, False, False, True, True, False])
    flags, threshold = aum_threshold_flags(aum, fake, percentile=50)
    assert threshold == -2.5  # median of the fake class's AUM (-3, -2)
    assert flags.tolist() == [False, False, False, False, False, False]
    flags, threshold = aum_threshold_flags(aum, fake, percentile=100)
    assert threshold == -2.0 and flags.tolist() == [False, False, False, False, False, False]
    flags, _ = aum_threshold_flags(
        np.array([-5.0, 1.0, -1.0, 0.0]), np.array([False, False, True, True]), percentile=99
    )
    assert flags.tolist() == [True, False, False, False]  # -5 < ~-0.01
    a, b = threshold_subsets(100, 9, seed=0)
    assert a.sum() == b.sum() == 10 and not (a & b).any()


def test_aum_threshold_decision_judges_each_sample_by_the_run_where_it_was_real():
    """Run 1's threshold samples are judged by run 2 and everything else by run 1, so a sample
    far below both thresholds is flagged wherever it sits (Pleiss et al., Sec. 3)."""
    from auditor.detectors.dynamics import aum_threshold_decision

    n = 12
    fake1, fake2 = np.zeros(n, bool), np.zeros(n, bool)
    fake1[[0, 1]] = True
    fake2[[2, 3]] = True
    low = {0, 2, 4}  # one sample of each kind: fake in run 1, fake in run 2, never fake
    aum = np.array([-10.0 if i in low else 5.0 for i in range(n)])
    aum1 = np.where(fake1, 0.0, aum)  # the fake class sits at 0 in each run
    aum2 = np.where(fake2, 0.0, aum)
    flags, thresholds = aum_threshold_decision([(aum1, fake1), (aum2, fake2)])
    assert thresholds == [0.0, 0.0]
    assert set(np.flatnonzero(flags)) == low


def test_detector_of_a_prefixed_name_and_who_votes():
    from auditor.detectors.registry import detector_of, voting

    assert detector_of("ce_loss") == "loss" and detector_of("eac_loss_mean") == "loss_mean"
    assert detector_of("gsmc_cleanlab_both") == "cleanlab_both" and detector_of("knn") == "knn"
    assert detector_of("suspicion") is None
    assert not voting("ce_cartography_variability") and not voting("cartography_variability")
    assert voting("ce_cartography_confidence") and voting("toy_unregistered_score")


def test_non_voting_detectors_count_in_no_votes_and_have_no_top_view():
    """`detector_votes` and the `top-` views (`voting_columns`) skip `cartography_variability`
    (declared `votes=False`); its score column stays."""
    import pandas as pd

    from auditor.detectors.votes import detector_votes, voting_columns

    samples = pd.DataFrame(
        {
            "suspicion": [0.9, 0.1, 0.5],
            "score_ce_aum": [3.0, 1.0, 2.0],
            "score_ce_cartography_variability": [0.0, 0.3, 0.1],  # ranks sample 1 first
            "flag_ce_cleanlab": [True, False, False],  # a flag whose score was dropped
            "flag_suspicion": [True, False, False],
        }
    )
    assert voting_columns(samples) == ["score_ce_aum"]
    votes, n_detectors = detector_votes(samples)
    assert votes.tolist() == [1, 0, 0] and n_detectors == 1
