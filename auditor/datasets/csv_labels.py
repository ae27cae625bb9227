"""A user's own labels in a CSV: `path,label[,split]` (header required), paths relative to the
root, labels as class names or integer ids. Registry keys: `label_file` (default
`labels.csv`, relative to the root), `classes` (optional: the names in label order; otherwise
sorted names, or ids 0..K-1). Split values `train` / `test` (`val` is read as test); without a
split column every row is training data. Paths must stay inside the root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from auditor.datasets.kinds import DatasetKind, LabelFileFormat, register_kind
from auditor.datasets.label_cells import LabelReader, looks_numeric, refuse_same_file
from auditor.datasets.labelfile import quotable, read_csv_rows, shown
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import FileImages, SampleTable
from auditor.errors import UserError
from auditor.fsutil import inside_root


def label_file(entry: DatasetEntry, root: Path | None) -> Path | None:
    return None if root is None else root / entry.options.get("label_file", "labels.csv")


def status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    path = label_file(entry, root)
    if path is None or not path.is_file():
        return False, "no root given" if root is None else f"{path.name} not found"
    with path.open("rb") as handle:  # counted as bytes: `audit datasets` never decodes
        lines = sum(1 for line in handle if line.strip())
    return True, f"{max(lines - 1, 0)} rows"


def class_index(
    values: pd.Series, classes: list[str] | None, where: Path, lines: np.ndarray, quote: bool
) -> tuple[np.ndarray, list[str]]:
    """(the class of every row, the class names): the registry's `classes` (cells name them or
    give their ids), else ids 0..K-1 when every cell is one, else the sorted names the cells
    hold. Cells are read by the one label reader (`LabelReader`)."""
    text = values.astype(str).str.strip()
    if classes is None and text.str.fullmatch(r"[0-9]{1,4}").all():
        count = int(text.astype(int).max()) + 1
        reader = LabelReader(where, count, quote=quote)
        return reader.read_column(text.tolist(), lines), [str(i) for i in range(count)]
    if classes is None:
        classes = sorted({cell for cell in text if not looks_numeric(cell)})
    reader = LabelReader(where, len(classes), names=classes, quote=quote)
    return reader.read_column(text.tolist(), lines), list(classes)


def load(entry: DatasetEntry, root: Path | None) -> SampleTable:
    path = label_file(entry, root)
    if path is None or not path.is_file():
        raise UserError(
            f"csv needs a label file {path or '<root>/labels.csv'} with a header "
            "`path,label[,split]`; "
            f"{entry.root_hint()} (the folder the paths are relative to)"
        )
    quote = quotable(path, root)
    frame, lines = read_csv_rows(path, ["path", "label"], quote=quote)
    if frame.empty:
        raise UserError(f"{path}: no rows under its header; list `path,label` lines")
    empty = np.flatnonzero((frame["path"].str.strip() == "") | (frame["label"].str.strip() == ""))
    if len(empty):
        raise UserError(f"{path}, line {lines[empty[0]]}: empty path or label")
    files = [
        inside_root(root, p, where=f"{path}, line {line}")
        for p, line in zip(frame["path"], lines, strict=True)
    ]
    refuse_same_file(files, frame["path"].tolist(), lines, path, quote)
    labels, classes = class_index(frame["label"], entry.classes, path, lines, quote)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} images listed in {path} are missing, e.g. {shown(missing[0], quote)}"
        )
    split = (
        frame["split"].str.strip().replace({"": "train"}).str.lower().replace({"val": "test"})
        if "split" in frame
        else pd.Series(["train"] * len(frame))
    )
    unknown = sorted(set(split) - {"train", "test"})
    if unknown:
        raise UserError(f"{path}: split values must be train, test or val, found {unknown}")
    return SampleTable(
        name=entry.name,
        class_names=classes,
        sample_ids=frame["path"].to_numpy(str),
        filepaths=np.array([str(f) for f in files]),
        labels=labels.astype(np.int64),
        split=split.to_numpy(str),
        images=FileImages(files),
    )


register_kind(
    DatasetKind(
        name="csv",
        load=load,
        status=status,
        label_file=LabelFileFormat.PATH_CSV,
        options={"label_file": str},
    )
)
