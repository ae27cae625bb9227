"""The tables of the run folder, with the columns of docs/run-folder.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from auditor.scoring import Scores

RELABEL_COLUMNS = [
    "sample_id",
    "filepath",
    "given_label",
    "given_name",
    "suggested_label",
    "suggested_name",
    "suggested_confidence",
    "suspicion",
    "detectors",
    "run_id",
    "decision",
]


def samples_table(
    *,
    sample_ids: np.ndarray,
    filepaths: np.ndarray,
    given: np.ndarray,
    true: np.ndarray | None,
    class_names: list[str],
    scores: Scores,
) -> pa.Table:
    """One row per training sample: identity, labels, prediction, suggestion, every score and
    flag, and the class probabilities (list<float>)."""
    n = len(sample_ids)
    pred = scores.probs.argmax(axis=1).astype(np.int64)
    names = np.array(class_names, dtype=object)
    columns: dict[str, pa.Array] = {
        "sample_id": pa.array(sample_ids.astype(str), pa.string()),
        "filepath": pa.array(filepaths.astype(str), pa.string()),
        "given_label": pa.array(given, pa.int64()),
        "given_name": pa.array(names[given].tolist(), pa.string()),
        "true_label": pa.array(true if true is not None else [None] * n, pa.int64()),
        "is_noisy": pa.array(given != true if true is not None else [None] * n, pa.bool_()),
        "pred_label": pa.array(pred, pa.int64()),
        "suggested_label": pa.array(pred, pa.int64()),
        "suggested_confidence": pa.array(scores.probs.max(axis=1), pa.float64()),
        "suspicion": pa.array(scores.scores["suspicion"], pa.float64()),
    }
    for name, values in scores.scores.items():
        if name != "suspicion":
            columns[f"score_{name}"] = pa.array(values, pa.float64())
    for name, values in scores.flags.items():
        columns[f"flag_{name}"] = pa.array(values, pa.bool_())
    columns["probs"] = pa.array(scores.probs.astype(np.float32).tolist(), pa.list_(pa.float32()))
    return pa.table(columns)


def dynamics_table(
    sample_ids: np.ndarray, per_method: dict[str, dict[str, np.ndarray]]
) -> pa.Table:
    """Long format: one row per (method, epoch, sample) with that method's signals; a signal a
    method does not record is null."""
    frames = []
    for method, signals in per_method.items():
        epochs, n = next(iter(signals.values())).shape
        frame = pd.DataFrame(
            {
                "epoch": np.repeat(np.arange(1, epochs + 1), n),
                "sample_id": np.tile(sample_ids.astype(str), epochs),
                "method": method,
            }
        )
        for name, values in signals.items():
            frame[name] = values.reshape(-1).astype(np.float32)
        frames.append(frame)
    return pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)


def relabel_events_table(
    sample_ids: np.ndarray, per_method: dict[str, dict[str, np.ndarray]]
) -> pa.Table | None:
    """Every relabelling during training: method, sample_id, epoch (1-based), from_label,
    to_label. None when no method relabels."""
    if not per_method:
        return None
    frames = [
        pd.DataFrame(
            {
                "method": method,
                "sample_id": sample_ids[events["index"]].astype(str),
                "epoch": events["epoch"].astype(np.int64),
                "from_label": events["from_label"].astype(np.int64),
                "to_label": events["to_label"].astype(np.int64),
            }
        )
        for method, events in per_method.items()
    ]
    return pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)


def relabel_frame(
    frame: pd.DataFrame, class_names: list[str], run_id: str, selected: np.ndarray | None = None
) -> pd.DataFrame:
    """The `selected` samples (default: those the ensemble flags), most suspect first, with the
    detectors that flagged them."""
    flag_columns = [c for c in frame.columns if c.startswith("flag_")]
    chosen = frame["flag_suspicion"].to_numpy(bool) if selected is None else selected
    flagged = frame[chosen].sort_values("suspicion", ascending=False, kind="stable")
    names = np.array(class_names, dtype=object)
    flag_matrix = flagged[flag_columns].to_numpy(dtype=bool)
    detector_names = [c[len("flag_") :] for c in flag_columns]
    return pd.DataFrame(
        {
            "sample_id": flagged["sample_id"],
            "filepath": flagged["filepath"],
            "given_label": flagged["given_label"],
            "given_name": flagged["given_name"],
            "suggested_label": flagged["suggested_label"],
            "suggested_name": names[flagged["suggested_label"].to_numpy()],
            "suggested_confidence": flagged["suggested_confidence"].round(4),
            "suspicion": flagged["suspicion"].round(6),
            "detectors": [
                ";".join(d for d, f in zip(detector_names, row, strict=True) if f)
                for row in flag_matrix
            ],
            "run_id": run_id,
            "decision": "",
        },
        columns=RELABEL_COLUMNS,
    )
