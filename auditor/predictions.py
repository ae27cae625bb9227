"""`audit score`: the probability-only detectors on a user's own out-of-sample predictions.

Inputs are NumPy `.npy` files read without pickles: `pred_probs` [N, K] (any float dtype; rows
are renormalised in float64, as float16 files need), `labels` [N] integer given labels and,
optionally, `true_labels` [N] for detection metrics. Writes a run folder like `audit run`
(no training: `dynamics.parquet` is empty, `accuracy` is empty).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from auditor.errors import UserError
from auditor.evaluation import evaluate_detectors
from auditor.outputs.run_folder import RunState, write_run_files
from auditor.scoring import score_probabilities

EMPTY_DYNAMICS = pa.table({"epoch": pa.array([], pa.int64()), "sample_id": pa.array([], pa.string()),
                           "method": pa.array([], pa.string())})  # fmt: skip


def load_array(path: str | Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file") from None
    except ValueError as err:
        raise UserError(f"{what} {path}: not a plain .npy array ({err})") from None


def load_labels(path: str | Path, what: str, n: int, k: int) -> np.ndarray:
    labels = load_array(path, what)
    if labels.ndim != 1 or len(labels) != n:
        raise UserError(
            f"{what} {path}: expected shape ({n},) to match --pred-probs, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{what} {path}: expected integer class ids, got {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= k))
    if len(bad):
        raise UserError(f"{what} {path}: row {bad[0]} holds {labels[bad[0]]}, outside 0..{k - 1}")
    return labels.astype(np.int64)


def load_probs(path: str | Path) -> np.ndarray:
    probs = load_array(path, "--pred-probs").astype(np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise UserError(
            f"--pred-probs {path}: expected shape (N, K) with K >= 2, got {probs.shape}"
        )
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise UserError(f"--pred-probs {path}: probabilities must be finite and non-negative")
    total = probs.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise UserError(f"--pred-probs {path}: row {int(np.argmin(total))} sums to zero")
    return probs / total


def score_predictions(
    pred_probs: str, labels: str, true_labels: str | None, out: str, argv: list[str]
) -> tuple[Path, dict]:
    t0 = time.perf_counter()
    probs = load_probs(pred_probs)
    n, k = probs.shape
    given = load_labels(labels, "--labels", n, k)
    true = load_labels(true_labels, "--true-labels", n, k) if true_labels else None
    noise = (
        {"type": "unknown"}
        if true is None
        else {"type": "given-vs-true", "real_rate": float((given != true).mean())}
    )
    state = RunState.start(Path(out), "score", ["probs"], {
        "command": argv, "dataset": "score", "pred_probs": str(pred_probs), "labels": str(labels),
        "true_labels": true_labels, "n_train": n, "class_names": [str(c) for c in range(k)], "noise": noise,
    })  # fmt: skip
    with state.recording(t0):
        scores = score_probabilities(probs, given)
        detectors = evaluate_detectors(scores.scores, scores.flags, given, true)
        metrics = {"accuracy": {}, "detectors": detectors, "noise": noise,
                   "ensemble": {"members": scores.ensemble_members,
                                "flagged": int(scores.flags["suspicion"].sum()),
                                "decisions": scores.decisions},
                   "rank_identical": scores.rank_identical}  # fmt: skip
        write_run_files(
            state.run_dir,
            sample_ids=np.array([f"{i:07d}" for i in range(n)]),
            filepaths=np.array([f"{labels}#{i}" for i in range(n)]),
            class_names=[str(c) for c in range(k)],
            given=given,
            true=true,
            scores=scores,
            metrics=metrics,
            dynamics=EMPTY_DYNAMICS,
        )
    return state.run_dir, metrics
