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
from auditor.ensemble_members import (
    CONCENTRATED_MEMBERS,
    CONCENTRATION_THRESHOLD,
    ENSEMBLE_MEMBERS,
    MIN_CONFUSED_SHARE,
    confusion_structure,
    frozen_members,
    memorised_members,
)
from auditor.evidence import FROZEN, MethodEvidence
from auditor.flag_count import flag_count

# Methods whose test accuracy (last-5 mean) trails the best method's by more than this are left
# out of the ensemble: a method that learned less sees the noise less clearly.
ACCURACY_TOLERANCE = 0.02


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
        said = [f"{', '.join(memorised)} memorised: its training dynamics (aum) vote"]
        if "self_confidence" in members:
            said.append(
                "its normalized margin stands for its self-confidence (its early probabilities "
                "are averaged over epochs, their mass spread)"
            )
        if "knn" in members:
            said.append(
                "its kNN vote (on the final model's embeddings, which fitted the wrong labels) "
                "does not"
            )
        out.decisions.append(", ".join(said))
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
