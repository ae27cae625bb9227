"""Scoring cost at scale (a script, not a test): every detector of one method, the ensemble and
its flags on synthetic evidence of N samples (default 300,000), K = 8 classes, 512-d
embeddings, 10 epochs of signals, 20% symmetric noise. Prints wall time per part and the
process's peak resident memory.

    .venv/bin/python bench/scoring_scale.py [--n 300000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from auditor.evaluation import detection_metrics
from auditor.evidence import MethodEvidence
from auditor.scoring import Scores, method_scores


def synthetic_probabilities(n: int, k: int, rng: np.random.Generator):
    """(true [n], given [n] with 20% flipped, noisy mask, logits [n, k], softmax probs [n, k]):
    logits favour the true class by 3."""
    true = rng.integers(0, k, n)
    noisy = rng.random(n) < 0.2
    given = np.where(noisy, (true + rng.integers(1, k, n)) % k, true)
    logits = rng.normal(0, 1, (n, k)).astype(np.float32)
    logits[np.arange(n), true] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return true, given, noisy, logits, probs


def synthetic_evidence(n: int, k: int, dim: int, epochs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    true, given, noisy, logits, probs = synthetic_probabilities(n, k, rng)
    embeddings = (rng.normal(0, 1, (k, dim))[true] + rng.normal(0, 1.5, (n, dim))).astype(
        np.float32
    )
    margin_given = logits[np.arange(n), given] - np.where(
        noisy, logits[np.arange(n), true], logits.max(1)
    )
    signals = {
        "loss": np.repeat(-np.log(probs[np.arange(n), given])[None], epochs, 0)
        + rng.normal(0, 0.1, (epochs, n)).astype(np.float32),
        "margin": np.repeat(margin_given[None], epochs, 0).astype(np.float32),
        "p_given": np.repeat(probs[np.arange(n), given][None], epochs, 0),
        "correct": (rng.random((epochs, n)) < np.where(noisy, 0.2, 0.9)).astype(np.float32),
    }
    return MethodEvidence("ce", signals, probs, embeddings=embeddings), given, noisy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300_000)
    args = parser.parse_args()
    t = time.perf_counter()
    ev, given, noisy = synthetic_evidence(args.n, 8, 512, 10)
    print(
        f"synthetic evidence: {time.perf_counter() - t:.1f} s "
        f"({ev.embeddings.nbytes / 1e6:.0f} MB of embeddings)"
    )
    t = time.perf_counter()
    scores, flags, _ = method_scores(ev, given)
    detectors_s = time.perf_counter() - t
    t = time.perf_counter()
    result = Scores(scores, flags, ev.probs, ["ce_aum", "ce_self_confidence", "ce_knn"]).finish(
        given
    )
    ensemble_s = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"N = {args.n:,}: {len(scores)} detectors {detectors_s:.1f} s, "
        f"ensemble + flags {ensemble_s:.1f} s, "
        f"total {detectors_s + ensemble_s:.1f} s; peak resident memory {peak_gb:.2f} GB"
    )
    for name in ("ce_knn", "ce_aum", "suspicion"):
        m = detection_metrics(result.scores[name], noisy)
        print(f"  {name}: AUROC {m['auroc']:.3f}, AP {m['ap']:.3f}")


if __name__ == "__main__":
    main()
