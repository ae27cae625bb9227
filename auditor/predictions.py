"""`audit score`: the probability-only detectors on a user's own out-of-sample predictions.

Inputs are NumPy `.npy` files read without pickles, or arrays already in memory
(`auditor.api.score`, checked the same way): `pred_probs` [N, K] (any float dtype; rows are
renormalised in float64, as float16 files need), `labels` [N] integer given labels and,
optionally, `true_labels` [N] for detection metrics. Writes a run folder like `audit run` (no
training: `dynamics.parquet` is empty, `accuracy` is empty).
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

EMPTY_DYNAMICS = pa.table(
    {
        "epoch": pa.array([], pa.int64()),
        "sample_id": pa.array([], pa.string()),
        "method": pa.array([], pa.string()),
    }
)


NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file (numpy.lib.format)
NUMERIC = "biuf"  # the dtype kinds of a plain numeric array: bool, integers, floats
INTEGER = "iu"  # of class ids
NEEDED = {NUMERIC: "a plain numeric array (bool, integer or float)", INTEGER: "integer class ids"}


Source = str | Path | np.ndarray  # a .npy file, or the array itself


def shown_source(source: Source) -> str:
    """How a message names an input: its path, or an array by its shape."""
    return f"(array of shape {source.shape})" if isinstance(source, np.ndarray) else str(source)


def load_array(path: Source, what: str, kinds: str = NUMERIC) -> np.ndarray:
    """The plain array in the .npy file `path` whose dtype is of `kinds` (numpy's dtype kinds:
    NUMERIC for probabilities, INTEGER for class ids), or a UserError naming the flag `what` and
    the file: not a regular file (a folder; a FIFO would block the read), not a .npy file (an
    .npz archive, a pickle), a header declaring more data than the file holds (memory-mapped
    first, so a few bytes cannot ask for terabytes), or a dtype of another kind (objects, which
    are never unpickled, structured records, strings, complex numbers, dates; floats where class
    ids are asked for), each refusal saying the same of what is needed (`NEEDED`). An array given
    itself is checked for its dtype alone."""
    if isinstance(path, np.ndarray):
        if path.dtype.kind not in kinds:
            raise UserError(
                f"{what} {shown_source(path)}: dtype {path.dtype}, {NEEDED[kinds]} needed"
            )
        return np.array(path)
    file = Path(path)
    if not file.is_file():
        kind = "a folder" if file.is_dir() else "not a regular file"
        raise UserError(
            f"{what} {path}: {kind}, not a .npy file"
            if file.exists()
            else f"{what} {path}: no such file"
        )
    try:
        with file.open("rb") as handle:
            npy = handle.read(len(NPY_MAGIC)) == NPY_MAGIC
        mapped = np.load(file, mmap_mode="r", allow_pickle=False) if npy else None
    except OSError as err:
        raise UserError(f"{what} {path}: cannot be read ({err.strerror or err})") from None
    except (ValueError, EOFError) as err:
        raise UserError(
            f"{what} {path}: unreadable as a .npy array ({err}); {NEEDED[kinds]} needed"
        ) from None
    if mapped is None:
        raise UserError(f"{what} {path}: not a .npy file (write one array with numpy.save)")
    if mapped.dtype.kind not in kinds:
        raise UserError(f"{what} {path}: dtype {mapped.dtype}, {NEEDED[kinds]} needed")
    return np.array(mapped)


def load_labels(source: Source, what: str, n: int, k: int) -> np.ndarray:
    """Class ids [N] in 0..k-1 from `source`, for the flag `what`; N must be --pred-probs's."""
    labels = load_array(source, what, INTEGER)
    path = shown_source(source)
    if labels.ndim != 1 or len(labels) != n:
        raise UserError(
            f"{what} {path}: expected shape ({n},) to match --pred-probs, got {labels.shape}"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= k))
    if len(bad):
        raise UserError(f"{what} {path}: row {bad[0]} holds {labels[bad[0]]}, outside 0..{k - 1}")
    return labels.astype(np.int64)


def load_probs(source: Source) -> np.ndarray:
    """--pred-probs [N, K], N >= 1 and K >= 2, every row renormalised to sum to 1 in float64:
    values must be finite and non-negative, and no row may sum to zero or overflow."""
    probs = load_array(source, "--pred-probs").astype(np.float64)
    path = shown_source(source)
    if probs.ndim != 2 or probs.shape[0] < 1 or probs.shape[1] < 2:
        raise UserError(
            f"--pred-probs {path}: expected shape (N, K) with N >= 1 rows and K >= 2 classes, "
            f"got {probs.shape}"
        )
    bad = np.argwhere(~np.isfinite(probs) | (probs < 0))
    if len(bad):
        row, column = bad[0]
        raise UserError(
            f"--pred-probs {path}: row {row}, class {column} holds {probs[row, column]}; "
            "probabilities must be finite and non-negative"
        )
    with np.errstate(over="ignore"):  # a row that overflows is refused below
        total = probs.sum(axis=1, keepdims=True)
    wrong = np.flatnonzero((total[:, 0] <= 0) | ~np.isfinite(total[:, 0]))
    if len(wrong):
        row = wrong[0]
        raise UserError(
            f"--pred-probs {path}: row {row} sums to {total[row, 0]}; give probabilities"
        )
    return probs / total


def score_predictions(
    pred_probs: Source, labels: Source, true_labels: Source | None, out: str, argv: list[str]
) -> tuple[Path, dict]:
    """Score `pred_probs` against `labels` (files or arrays) into a new run folder under `out`;
    (the run folder, its metrics)."""
    t0 = time.perf_counter()
    probs = load_probs(pred_probs)
    n, k = probs.shape
    given = load_labels(labels, "--labels", n, k)
    if np.unique(given).size < 2:
        raise UserError(
            f"--labels {shown_source(labels)}: every label is class {given[0]}; the detectors "
            "weigh a sample's class against the others', so at least 2 classes must occur"
        )
    true = load_labels(true_labels, "--true-labels", n, k) if true_labels is not None else None
    noise = (
        {"type": "unknown"}
        if true is None
        else {"type": "given-vs-true", "real_rate": float((given != true).mean())}
    )
    state = RunState.start(
        Path(out),
        "score",
        ["probs"],
        {
            "command": argv,
            "dataset": "score",
            "pred_probs": shown_source(pred_probs),
            "labels": shown_source(labels),
            "true_labels": None if true_labels is None else shown_source(true_labels),
            "n_train": n,
            "class_names": [str(c) for c in range(k)],
            "noise": noise,
        },
    )
    with state.recording(t0):
        scores = score_probabilities(probs, given)
        detectors = evaluate_detectors(scores.scores, scores.flags, given, true)
        metrics = {
            "accuracy": {},
            "detectors": detectors,
            "noise": noise,
            "ensemble": {
                "members": scores.ensemble_members,
                "flagged": int(scores.flags["suspicion"].sum()),
                "decisions": scores.decisions,
            },
            "rank_identical": scores.rank_identical,
        }
        write_run_files(
            state.run_dir,
            sample_ids=np.array([f"{i:07d}" for i in range(n)]),
            filepaths=np.array([f"{shown_source(labels)}#{i}" for i in range(n)]),
            class_names=[str(c) for c in range(k)],
            given=given,
            true=true,
            scores=scores,
            metrics=metrics,
            dynamics=EMPTY_DYNAMICS,
        )
    return state.run_dir, metrics
