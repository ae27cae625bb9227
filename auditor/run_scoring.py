"""The third phase of `audit run`: score every training sample from the methods' evidence
(`auditor.scoring.score_all`), print what the tool decided, and measure what can be measured:
accuracy per the papers' protocols, every detector against the truth when it is known, and
each method's memorisation curves (`metrics.json`, docs/run-folder.md)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from auditor import memorisation
from auditor.evaluation import accuracy_protocols, evaluate_detectors
from auditor.method_training import Trained
from auditor.prepare import Prepared
from auditor.scoring import Scores, score_all
from auditor.training.frozen import trust_accuracy


@dataclass(frozen=True)
class Scored:
    scores: Scores
    metrics: dict  # metrics.json
    seconds: float  # of the scoring (`score_all`)


def score_run(prepared: Prepared, trained: Trained) -> Scored:
    """Score the run, print the ensemble's decisions on stderr, and assemble metrics.json."""
    labels, split = prepared.labels, prepared.split
    start = time.perf_counter()
    last5 = {m: a["last5_mean"] for m, a in trained.accuracy.items()}
    evidence = list(trained.evidence)
    frozen = trained.frozen
    if frozen is not None:  # scored beside the methods, never displacing one
        evidence.append(frozen)
        own = accuracy_protocols(frozen.epoch_accuracy)["last5_mean"]
        last5[frozen.name] = trust_accuracy(own, last5)
    scores = score_all(evidence, labels.given, last5, prepared.held_out, split)
    seconds = time.perf_counter() - start
    print("audit: " + "\naudit: ".join(scores.decisions), file=sys.stderr)
    is_noisy = None if labels.true is None else labels.given != labels.true
    metrics = {
        "accuracy": trained.accuracy,
        "accuracy_split": split,
        "training_length": trained.lengths,  # without --epochs: method -> why that long
        "detectors": evaluate_detectors(scores.scores, scores.flags, labels.given, labels.true),
        "noise": labels.noise,
        "ensemble": {
            "members": scores.ensemble_members,
            "flagged": int(scores.flags["suspicion"].sum()),
            "decisions": scores.decisions,
            "early_learning": scores.early_learning,
            "flag_estimates": scores.flag_estimates,
            "mixture_separation": scores.mixture_separation,
        },
        "rank_identical": scores.rank_identical,
        "memorisation": {
            ev.name: memorisation.curves(
                ev.signals["correct"],
                ev.signals["loss"],
                trained.accuracy[ev.name]["per_epoch"],
                is_noisy,
                split,
                prepared.held_out,
            )
            for ev in trained.evidence
        },
    }
    if frozen is not None:
        metrics["frozen_features"] = {
            "accuracy": own,
            "in_ensemble": any(m.startswith(f"{frozen.name}_") for m in scores.ensemble_members),
            "seconds": trained.frozen_seconds,
        }
    if scores.aum_thresholds:
        metrics["aum_thresholds"] = scores.aum_thresholds
    return Scored(scores, metrics, seconds)
