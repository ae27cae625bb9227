"""The tables of the run folder, with the columns of docs/run-folder.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


# samples.parquet: these columns, then score_<detector> and flag_<detector> (`PREFIXED`), then
# `probs`; the truth's two columns are null when it is unknown, no other of these is.
SAMPLE_COLUMNS = {
    "sample_id": pa.string(),
    "filepath": pa.string(),
    "given_label": pa.int64(),
    "given_name": pa.string(),
    "true_label": pa.int64(),
    "is_noisy": pa.bool_(),
    "pred_label": pa.int64(),
    "suggested_label": pa.int64(),
    "suggested_confidence": pa.float64(),
    "suspicion": pa.float64(),
}
PREFIXED = {"score_": pa.float64(), "flag_": pa.bool_()}
PROBS = pa.list_(pa.float32())
NULLABLE = ("true_label", "is_noisy")
LABEL_COLUMNS = ("given_label", "true_label", "pred_label", "suggested_label")


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
    flag, and the class probabilities (list<float>), of the types `SAMPLE_COLUMNS`."""
    n = len(sample_ids)
    pred = scores.probs.argmax(axis=1).astype(np.int64)
    names = np.array(class_names, dtype=object)
    values = {
        "sample_id": sample_ids.astype(str),
        "filepath": filepaths.astype(str),
        "given_label": given,
        "given_name": names[given].tolist(),
        "true_label": true if true is not None else [None] * n,
        "is_noisy": given != true if true is not None else [None] * n,
        "pred_label": pred,
        "suggested_label": pred,
        "suggested_confidence": scores.probs.max(axis=1),
        "suspicion": scores.scores["suspicion"],
    }
    columns = {name: pa.array(v, SAMPLE_COLUMNS[name]) for name, v in values.items()}
    for name, v in scores.scores.items():
        if name != "suspicion":
            columns[f"score_{name}"] = pa.array(v, PREFIXED["score_"])
    for name, v in scores.flags.items():
        columns[f"flag_{name}"] = pa.array(v, PREFIXED["flag_"])
    columns["probs"] = pa.array(scores.probs.astype(np.float32).tolist(), PROBS)
    return pa.table(columns)


def layout_problem(schema: pa.Schema, rows: int, n_train: int | None) -> str | None:
    """Why a table of `schema` and `rows` rows is not laid out as samples.parquet of a run of
    `n_train` samples (None: not recorded), or None: a column missing or of another type than
    `SAMPLE_COLUMNS`, `PREFIXED`, `flag_suspicion`, `probs`; another number of rows. Read from a
    Parquet file's footer alone."""
    expected = SAMPLE_COLUMNS | {"flag_suspicion": PREFIXED["flag_"], "probs": PROBS}
    expected |= {c: t for c in schema.names for p, t in PREFIXED.items() if c.startswith(p)}
    for name, kind in expected.items():
        if name not in schema.names:
            return f"has no column {name}"
        if schema.field(name).type != kind:
            return f"has column {name} of type {schema.field(name).type}, expected {kind}"
    if n_train is not None and rows != n_train:
        return f"has {rows} rows, but manifest.json says n_train {n_train}"
    return None


def samples_problem(table: pa.Table, class_names: list[str], n_train: int | None) -> str | None:
    """Why `table` is not the samples.parquet of a run whose manifest lists `class_names` and
    `n_train` samples, or None: its layout (`layout_problem`), empty cells, a sample listed
    twice, a label outside the classes, probabilities not one per class, a `given_name` that
    is not the class of `given_label`."""
    k = len(class_names)
    problem = layout_problem(table.schema, table.num_rows, n_train)
    if problem:
        return problem
    empty = [
        c
        for c in [*SAMPLE_COLUMNS, "flag_suspicion", "probs"]
        if c not in NULLABLE and table[c].null_count
    ]
    if empty:
        return f"has empty cells in column {empty[0]}"
    if pc.count_distinct(table["sample_id"]).as_py() != table.num_rows:
        return "lists a sample_id twice"
    for name in LABEL_COLUMNS:
        low, high = pc.min_max(table[name]).values()
        outside = next(
            (v.as_py() for v in (low, high) if v.is_valid and not 0 <= v.as_py() < k), None
        )
        if outside is not None:
            return (
                f"has {name} {outside}, but manifest.json has {k} class_names (labels 0 to {k - 1})"
            )
    lengths = pc.min_max(pc.list_value_length(table["probs"])).values()
    if table.num_rows and {v.as_py() for v in lengths} != {k}:
        found = sorted({v.as_py() for v in lengths})
        return f"has probs of {found} values, expected one per class ({k})"
    names = pa.array(class_names, pa.string()).take(table["given_label"])
    wrong = pc.invert(pc.equal(names, table["given_name"].combine_chunks()))
    if pc.any(wrong).as_py():
        row = pc.index(wrong, True).as_py()
        label, name = table["given_label"][row].as_py(), table["given_name"][row].as_py()
        return (
            f"has given_name {name!r} for given_label {label}, which manifest.json class_names "
            f"calls {class_names[label]!r}"
        )
    return None


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
