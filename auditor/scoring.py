"""From what each method's training revealed to every detector's score, the ensemble suspicion,
and the suggested labels. Detector names are `<method>_<detector>` (columns `score_<name>`,
`flag_<name>`), plus the ensemble `suspicion`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

import auditor.detectors  # noqa: F401  (registers the built-in detectors)
from auditor.detectors.distinct import distinct_scores
from auditor.detectors.dynamics import aum_threshold_decision
from auditor.detectors.ensemble import flag_top, rank_average
from auditor.detectors.probabilities import estimated_issue_count, probability_detectors
from auditor.detectors.registry import DETECTORS, run_detector
from auditor.early_learning import EarlyReading, early_loss_count, read_early
from auditor.evidence import FROZEN, MethodEvidence
from auditor.flag_count import flag_count

# The ensemble's members, per trusted method, chosen by the structure of the noise the run
# estimates (`confusion_structure`), never by the truth. Measured in bench/detection.py (README,
# "Detection benchmark"): regime {10 epochs; 60 epochs, where CE memorises; fine-tuning a
# pre-trained backbone} x noise {symmetric, pair, instance, human-fer, two-way swaps} on
# Fashion-MNIST and synthetic faces.
# - Noise spread over many class pairs (symmetric, instance-dependent): AUM (training dynamics,
#   robust to memorisation), the self-confidence of the least memorised probabilities and the
#   kNN vote on the embeddings, three kinds of evidence that err differently. Adding the
#   normalized margin as a fourth was measured (3 seeds each, mean AP with / without it):
#   pre-trained faces 0.936 / 0.930 and 0.942 / 0.934, Fashion-MNIST symmetric 0.933 / 0.931,
#   0.958 / 0.954, 0.960 / 0.957, but the demo's run 0.9830 / 0.9836 AUROC, 0.966 / 0.967 AP:
#   too small a gain for a member, and the demo must not get worse.
# - Confusions concentrated in a few class pairs, one way (a flip y -> y + 1) or both ways (A <->
#   B swaps, as annotators confuse sadness and neutral): a model fits such a consistent
#   confusion as if it were signal, so the in-sample training dynamics and embeddings absorb it
#   (AUM AP 0.77-0.80, kNN 0.57-0.58 on the demo under pair noise) while the probabilities'
#   disagreement with the label keeps it (normalized margin 0.83-0.84, mistakenness 0.85).
#   One member reads it: `confident_disagreement` (mistakenness where the model disagrees, the
#   margin where it agrees). It replaced the mean rank of the margin and mistakenness (mean
#   AP): two-way swaps on the demo 0.559 -> 0.589 (60 epochs, 3 seeds), 0.620 -> 0.663 and
#   0.624 -> 0.666 (pre-trained, 10 / 30 epochs, 3 seeds), 0.624 -> 0.656 (10 epochs, 3
#   seeds); pair noise 0.825 -> 0.834 (demo, 60 epochs, 3 seeds), 0.603 -> 0.607 (faces, 60
#   epochs, 3 seeds); faces read as concentrated under human-fer and symmetric noise
#   0.714 -> 0.710 and 0.783 -> 0.781 (3 seeds; its docstring says why it loses there).
ENSEMBLE_MEMBERS = ("aum", "self_confidence", "knn")
CONCENTRATED_MEMBERS = ("confident_disagreement",)
# The share of the estimated confusions that lie in the K most confused (given, predicted) class
# pairs (`confusion_structure`) at and above which the noise is read as concentrated. Measured
# on the least memorised probabilities (bench/detection.py, one seed): 0.27-0.34 under
# symmetric noise (Fashion-MNIST, 10 classes), 0.94-0.99 under two-way swaps in 3 pairs of
# classes; on synthetic faces (7 classes) after 60 epochs 0.64 under pair noise and 0.65 under
# human-fer noise, close to the threshold.
CONCENTRATION_THRESHOLD = 0.6
# ... read only when confident learning counts confusions for at least this share of the samples:
# a run whose probabilities fitted the given labels counts few (8 of 1,000 on synthetic faces
# after 60 epochs) and says nothing about the noise's structure.
MIN_CONFUSED_SHARE = 0.05
# Methods whose test accuracy (last-5 mean) trails the best method's by more than this are left
# out of the ensemble: a method that learned less sees the noise less clearly.
ACCURACY_TOLERANCE = 0.02


def memorised_members(members: tuple[str, ...]) -> tuple[str, ...]:
    """The members of a method that memorised: its per-epoch training dynamics (`aum`) join,
    its kNN vote on the final model's embeddings leaves, and its normalized margin stands for
    its self-confidence. Measured (bench/detection.py, CE on synthetic faces after 60 epochs):
    with the margin members under pair noise AP 0.659 against 0.625 without AUM, under
    human-fer 0.715 against 0.702; with the default members under human-fer 0.732 without kNN
    against 0.705 with it.

    The margin, because such a method is read on its probabilities averaged over the early
    epochs (`auditor.early_learning`): a model still learning, averaged over the classes each
    sample moved between, spreads its mass (mean entropy 1.3-1.7 nats, mean top probability
    0.33-0.55, against 0.5-1.4 and 0.5-0.8 for the best-epoch model on synthetic faces). The
    given label's probability alone then calls every uncertain sample suspect; the margin asks
    whether one other class beats the label. Measured (3 seeds, CE's early reading, AP
    self-confidence / margin): faces pair 0.488-0.568 / 0.593-0.636, human-fer 0.694-0.737 /
    0.706-0.736, symmetric 0.724-0.824 / 0.733-0.810, instance 0.778-0.815 / 0.763-0.830;
    Fashion-MNIST 60 epochs symmetric 0.873-0.882 / 0.879-0.892, instance 0.850-0.889 /
    0.854-0.891 (on the best-epoch model the self-confidence ranks first on 14 of those 15
    readings outside pair noise). The suspicion (3 seeds, mean AP): faces pair 0.607 -> 0.647,
    symmetric 0.781 -> 0.786, instance 0.807 -> 0.805, human-fer 0.706 -> 0.706; cells where no
    trusted method memorised are unchanged (the demo's among them)."""
    kept = ["normalized_margin" if d == "self_confidence" else d for d in members if d != "knn"]
    return tuple(kept if "aum" in kept else ["aum", *kept])


def frozen_members(members: tuple[str, ...]) -> tuple[str, ...]:
    """The members of the frozen reading (`auditor.training.frozen`, with --weights): its
    normalized margin stands for its self-confidence. The fine-tuned methods vote with their
    self-confidence already; the frozen margin errs more differently from it (Spearman
    correlation with the trusted fine-tuned self-confidence 0.825-0.873 against 0.839-0.892 for
    the frozen self-confidence, 3 seeds of demo-pretrained-short-symmetric and
    synth-faces-pretrained-long-human-fer). Measured (bench/detection.py, 3 seeds, mean AP,
    before -> after): demo pre-trained symmetric 0.957 -> 0.959 and 0.954 -> 0.957, faces
    pre-trained human-fer 0.930 -> 0.935 and 0.934 -> 0.939, higher on all 12 seeds; the swap
    cells read `confident_disagreement` and are unchanged."""
    return tuple("normalized_margin" if d == "self_confidence" else d for d in members)


def confusion_structure(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(how concentrated the estimated confusions are, the share of samples confused): with C
    the confident joint (Northcutt et al., 2021; C[i, j] = samples given label i and confidently
    predicted j) off its diagonal, the share of sum C held by its K largest cells (K classes),
    in [0, 1] (about 1 / (K - 1) when the confusions spread evenly over every pair of classes;
    1 when they lie in K pairs or fewer: a flip y -> y + 1, swaps inside a few pairs, whichever
    way they go; 0 when nothing is confused), and sum C / N."""
    from cleanlab.count import compute_confident_joint

    joint = compute_confident_joint(labels, probs).astype(np.float64)
    np.fill_diagonal(joint, 0.0)
    total = joint.sum()
    k = len(joint)
    top = np.sort(joint.ravel())[::-1][:k].sum()
    return (float(top / total) if total else 0.0), float(total / len(labels))


def split_words(split: str | None) -> str:
    """The accuracy a decision reads, in words: on the test split, or on the validation split
    the run held out (`auditor.data_choices`), scored against its given labels."""
    return "test accuracy" if split == "test" else f"{split} accuracy (given labels)"


def probability_source(
    ev: MethodEvidence, split: str | None = "test", reading: EarlyReading | None = None
) -> str:
    """Where a method's probability detectors read their probabilities, in words."""
    epochs = len(ev.signals["loss"]) if "loss" in ev.signals else None
    if ev.oos_probs is not None:
        return f"{ev.name}: probabilities out-of-sample (cross-fitted)"
    if ev.early_probs is not None and reading is not None:
        return reading.reason
    if ev.best_probs is not None:
        return (
            f"{ev.name}: probabilities from the model after epoch {ev.best_epoch} of {epochs}, "
            f"its best {split_words(split)}"
        )
    return (
        f"{ev.name}: probabilities from the final model (no test or validation split to "
        "choose an epoch)"
    )


def trusted_sentences(
    accuracy: dict[str, float | None], trusted: list[str], split: str | None = "test"
) -> list[str]:
    """The trust decision in words."""
    if not any(a is not None for a in accuracy.values()):
        return [
            f"trusts every method ({', '.join(accuracy)}): no test or validation split to "
            "compare them"
        ]
    shown = {m: "none" if a is None else f"{a:.3f}" for m, a in accuracy.items()}
    left = [m for m in accuracy if m not in trusted]
    out = f"trusts {', '.join(f'{m} ({shown[m]})' for m in trusted)}"
    if left:
        out += (
            f"; leaves out {', '.join(f'{m} ({shown[m]})' for m in left)}: "
            f"{split_words(split)} (last-5 mean) more than {ACCURACY_TOLERANCE} below the "
            "best"
        )
    return [out]


def grouped_rank_average(scores: list[np.ndarray], held_out: np.ndarray | None) -> np.ndarray:
    """`rank_average` of `scores` ([N] each), computed separately over the held-out samples
    (indices) and over the others: a held-out sample's signals come from a model that never
    trained on it (its margins lower, its losses higher, clean or not), so its ranks are
    comparable with the other held-out samples' only. Both groups are random draws of each
    given class (`auditor.data_choices.validation_split`), so each holds the same share of
    wrong labels in expectation, and a rank within its group means the same in both."""
    if held_out is None or len(held_out) == 0:
        return rank_average(scores)
    out = np.empty(len(scores[0]))
    inside = np.zeros(len(out), dtype=bool)
    inside[held_out] = True
    for group in (inside, ~inside):
        out[group] = rank_average([s[group] for s in scores])
    return out


def trusted_methods(accuracy: dict[str, float | None]) -> list[str]:
    """Methods within ACCURACY_TOLERANCE of the best test accuracy; all of them without one."""
    known = {m: a for m, a in accuracy.items() if a is not None}
    if not known:
        return list(accuracy)
    best = max(known.values())
    return [m for m in accuracy if m not in known or known[m] >= best - ACCURACY_TOLERANCE]


@dataclass
class Scores:
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # detector -> [N]
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # deciding detector -> [N] bool
    probs: np.ndarray | None = None  # [N, K] the probabilities suggestions come from
    ensemble_members: list[str] = field(default_factory=list)
    aum_thresholds: dict[str, list[float]] = field(default_factory=dict)  # method -> per run
    rank_identical: dict[str, list[str]] = field(default_factory=dict)  # kept -> dropped scores

    decisions: list[str] = field(default_factory=list)  # what the tool decided, and why
    # method -> its early-learning reading (`auditor.early_learning`): onset, epochs averaged
    early_learning: dict[str, dict] = field(default_factory=dict)
    # estimator -> its estimate of the number of label errors (the flag count: `finish`)
    flag_estimates: dict[str, int] = field(default_factory=dict)
    # loss mixture estimate -> Ashman's D between its components (counted above 2: `finish`)
    mixture_separation: dict[str, float] = field(default_factory=dict)

    def finish(
        self,
        labels: np.ndarray,
        loss_estimates: dict[str, int] | None = None,
        held_out: np.ndarray | None = None,
        frozen_estimate: int | None = None,
        count_probs: np.ndarray | None = None,
        loss_separation: dict[str, float] | None = None,
    ) -> Scores:
        """Add the ensemble `suspicion` over `ensemble_members` (ranked within the held-out
        samples and within the others, `grouped_rank_average`) and its flags: the top n, n from
        `auditor.flag_count.flag_count` on confident learning's estimate on `count_probs`
        (`probs` when None; a run that memorised counts on earlier epochs than it ranks,
        `auditor.early_learning`), the trusted methods' loss mixtures' (`loss_estimates`, with
        their `loss_separation`) and, with --weights, the frozen features' (`frozen_estimate`)."""
        members = [self.scores[name] for name in self.ensemble_members]
        suspicion = grouped_rank_average(members, held_out)
        self.scores["suspicion"] = suspicion
        counted = self.probs if count_probs is None else count_probs
        count = flag_count(
            estimated_issue_count(counted, labels),
            loss_estimates or {},
            loss_separation or {},
            frozen_estimate,
        )
        self.flag_estimates, self.mixture_separation = count.estimates, count.separation
        self.flags["suspicion"] = flag_top(suspicion, count.n)
        self.decisions.append(count.decision)
        return self


def method_scores(ev: MethodEvidence, labels: np.ndarray) -> tuple[dict, dict, list[float]]:
    """Every registered detector whose inputs this method's evidence has: ({name: score},
    {name: flags}, AUM thresholds), names prefixed `<method>_`. With --aum-threshold, AUM's
    flags come from its threshold-sample trainings (`aum_threshold_decision`)."""
    scores, flags = {}, {}
    for d in DETECTORS.values():
        inputs = ev.inputs(d.reads, labels)
        if inputs is not None:
            scores[d.name], flag = run_detector(d, inputs)
            if flag is not None:
                flags[d.name] = flag
    thresholds = []
    if ev.aum_runs is not None:
        flags["aum"], thresholds = aum_threshold_decision(ev.aum_runs)
    prefixed = [{f"{ev.name}_{k}": v for k, v in d.items()} for d in (scores, flags)]
    return prefixed[0], prefixed[1], thresholds


def score_all(
    evidence: list[MethodEvidence],
    labels: np.ndarray,
    accuracy: dict[str, float | None],
    held_out: np.ndarray | None = None,
    split: str | None = "test",
) -> Scores:
    """Every detector of every method; the ensemble over the trusted methods (`accuracy`:
    method -> accuracy on `split`, last-5 mean, or None without a test or validation split);
    suggestions from the trusted methods' mean probabilities. `held_out`: the indices of the
    validation split's samples, ranked among themselves by the ensemble."""
    out = Scores()
    readings: dict[str, EarlyReading | None] = {}
    evidence = list(evidence)
    for i, ev in enumerate(evidence):
        evidence[i], readings[ev.name] = read_early(ev, held_out)
    for ev in evidence:
        scores, flags, thresholds = method_scores(ev, labels)
        out.scores |= scores
        out.flags |= flags
        if thresholds:
            out.aum_thresholds[ev.name] = thresholds
    trusted = trusted_methods(accuracy)
    out.decisions = trusted_sentences(accuracy, trusted, split)
    out.decisions += [
        probability_source(ev, split, readings[ev.name]) for ev in evidence if ev.name in trusted
    ]
    out.probs = np.mean([ev.probs for ev in evidence if ev.name in trusted], axis=0)
    count_probs = np.mean([ev.count_probs for ev in evidence if ev.name in trusted], axis=0)
    concentration, confused = confusion_structure(out.probs, labels)
    concentrated = concentration >= CONCENTRATION_THRESHOLD and confused >= MIN_CONFUSED_SHARE
    members = CONCENTRATED_MEMBERS if concentrated else ENSEMBLE_MEMBERS
    reading = (
        "confusions concentrated in a few class pairs, read by the margin to the strongest "
        "other class"
        if concentrated
        else "training dynamics, probabilities and neighbours"
    )
    out.decisions.append(
        f"{concentration:.0%} of the estimated confusions lie in the {out.probs.shape[1]} most "
        f"confused class pairs, over {confused:.1%} of the samples (concentrated at "
        f"{CONCENTRATION_THRESHOLD:.0%} over at least {MIN_CONFUSED_SHARE:.0%}): {reading}"
    )
    memorised = [m for m in trusted if readings[m] is not None and readings[m].memorised]
    if memorised:
        out.decisions.append(
            f"{', '.join(memorised)} memorised: its training dynamics (aum) vote, its normalized "
            "margin stands for its self-confidence (its early probabilities are averaged over "
            "epochs, their mass spread), its kNN vote (on the final model's embeddings, which "
            "fitted the wrong labels) does not"
        )
    chosen = {m: memorised_members(members) if m in memorised else members for m in trusted}
    if FROZEN in chosen:
        chosen[FROZEN] = frozen_members(members)
    out.ensemble_members = [
        f"{m}_{d}" for m in trusted for d in chosen[m] if f"{m}_{d}" in out.scores
    ]
    out.decisions.append(f"suspicion = mean rank of {', '.join(out.ensemble_members)}")
    if held_out is not None and len(held_out):
        out.decisions.append(
            f"ranks the {len(held_out)} validation samples among themselves and the others "
            "among themselves: a model that never trained on a sample reads it differently"
        )
    mixtures = {
        ev.name: early_loss_count(ev, readings[ev.name])
        for ev in evidence
        if ev.name in trusted and "loss" in ev.signals
    }
    loss_estimates = {m: count for m, (count, _) in mixtures.items()}
    loss_separation = {m: separation for m, (_, separation) in mixtures.items()}
    out.early_learning = {name: asdict(r) for name, r in readings.items() if r is not None}
    frozen = [ev.final_probs for ev in evidence if ev.name == FROZEN]
    frozen_estimate = estimated_issue_count(frozen[0], labels) if frozen else None
    out.finish(labels, loss_estimates, held_out, frozen_estimate, count_probs, loss_separation)
    out.scores, out.rank_identical = distinct_scores(
        out.scores, protect=[*out.ensemble_members, "suspicion"]
    )
    return out


def score_probabilities(probs: np.ndarray, labels: np.ndarray) -> Scores:
    """`audit score`: the probability-only detectors on a user's own (out-of-sample)
    predictions; the ensemble is the mean rank of self-confidence and normalized margin."""
    scores, flags = probability_detectors(probs, labels)
    out = Scores(scores, flags, probs, ["self_confidence", "normalized_margin"])
    out.finish(labels)
    out.scores, out.rank_identical = distinct_scores(
        out.scores, protect=[*out.ensemble_members, "suspicion"]
    )
    return out
