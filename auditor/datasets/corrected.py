"""Corrected label files: the file `audit apply` writes and `audit run --labels` reads.

The format is the one the dataset's kind declares (`DatasetKind.label_file`, looked up in the
registry of kinds when the file is written or read), so the file can stand in for the dataset's
own:

- `RAFDB_LIST` (raf-db): RAF-DB's list format, `train_00001.jpg 5` (labels 1..K), train and test
  rows;
- `PATH_CSV` (csv): the csv loader's own `path,label,split` (label names), a drop-in for
  `labels.csv`;
- `SAMPLE_ID_CSV` (every other built-in kind: image folders, FERPlus, AffectNet, Fashion-MNIST...):
  `sample_id,label,split` (label names), keyed by the sample ids of `audit run` (for an image
  folder, the image's path relative to the root: an image -> class mapping).

With `--labels`, a training sample the file does not list is left out of training (that is how
`drop` decisions take effect); a test sample the file does not list keeps the dataset's label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from auditor.csv_cells import neutralise_cell, restore_cell
from auditor.datasets.kinds import LabelFileFormat, find_kind
from auditor.datasets.label_cells import LabelReader
from auditor.datasets.labelfile import parse_name_label, read_csv_rows
from auditor.datasets.table import SampleTable, refuse_unusable
from auditor.errors import UserError
from auditor.fsutil import atomic_path, write_text_atomic

NOT_LISTED = -1
# The column naming the sample in each CSV format.
ID_COLUMN = {LabelFileFormat.PATH_CSV: "path", LabelFileFormat.SAMPLE_ID_CSV: "sample_id"}


def write_label_file(path: Path, table: SampleTable, labels: np.ndarray, kind: str) -> int:
    """Write `labels` (one per table row; NOT_LISTED leaves the row out) in the format of the
    dataset kind `kind`. Returns the number of rows written."""
    listed = np.flatnonzero(labels != NOT_LISTED)
    file_format = find_kind(kind).label_file
    if file_format is LabelFileFormat.RAFDB_LIST:
        lines = [f"{table.sample_ids[i]}.jpg {int(labels[i]) + 1}" for i in listed]
        write_text_atomic(path, "\n".join(lines) + "\n")
        return len(listed)
    names = np.array(table.class_names, dtype=object)
    frame = pd.DataFrame(
        {
            ID_COLUMN[file_format]: table.sample_ids[listed],
            "label": names[labels[listed]],
            "split": table.split[listed],
        }
    )
    with atomic_path(path) as tmp:
        frame.map(neutralise_cell).to_csv(tmp, index=False)
    return len(listed)


def read_label_file(path: Path, table: SampleTable, kind: str) -> np.ndarray:
    """The label of every table row from the file at `path`, in the format of the dataset kind
    `kind` (NOT_LISTED where absent). Unknown sample ids, unknown labels and duplicates are
    refused, naming the line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--labels {path} does not exist")
    row_of = {sid: i for i, sid in enumerate(table.sample_ids.tolist())}
    labels = np.full(len(table), NOT_LISTED, dtype=np.int64)
    file_format = find_kind(kind).label_file
    if file_format is LabelFileFormat.RAFDB_LIST:
        entries = [
            (name[:-4] if name.endswith(".jpg") else name, y, n + 1)
            for n, (name, y) in enumerate(parse_name_label(path, num_classes=table.num_classes))
        ]
    else:
        entries = csv_entries(path, table, ID_COLUMN[file_format])
    unknown = [(line, sid) for sid, _, line in entries if sid not in row_of]
    if unknown:
        shown = ", ".join(f"line {line} ({sid!r})" for line, sid in unknown[:5])
        raise UserError(
            f"{path}: {len(unknown)} rows name samples that are not in {table.name}: {shown}"
        )
    for sid, y, _ in entries:
        labels[row_of[sid]] = y
    return labels


def csv_entries(path: Path, table: SampleTable, column: str) -> list[tuple[str, int, int]]:
    """(sample id, label index, line number) of a CSV label file with a header naming `column`
    and `label` (class names or ids)."""
    frame, lines = read_csv_rows(path, [column, "label"])
    frame = frame.map(restore_cell)
    labels = LabelReader(path, table.num_classes, names=table.class_names).read_column(
        frame["label"].tolist(), lines
    )
    entries, seen = [], {}
    for sid, label, line in zip(frame[column], labels.tolist(), lines.tolist(), strict=True):
        if sid in seen:
            raise UserError(f"{path}, line {line}: {sid!r} already appears on line {seen[sid]}")
        seen[sid] = line
        entries.append((sid, label, line))
    return entries


def with_labels(table: SampleTable, path: Path, kind: str) -> tuple[SampleTable, dict]:
    """The table trained on with `--labels`: listed rows take the file's label, unlisted
    training rows are left out, unlisted test rows keep theirs. Returns it and counts for the
    manifest."""
    labels = read_label_file(path, table, kind)
    listed = labels != NOT_LISTED
    keep = listed | (table.split != "train")
    if not (keep & (table.split == "train")).any():
        raise UserError(f"--labels {path} lists none of the training samples of {table.name}")
    changed = int((listed & (labels != table.labels)).sum())
    out = table.select(np.flatnonzero(keep))
    out.labels = np.where(listed[keep], labels[keep], out.labels)
    out.true_labels = None
    out.truth_source = None
    refuse_unusable(out, f"--labels {path}")
    info = {
        "file": str(path),
        "listed": int(listed.sum()),
        "changed": changed,
        "left_out": int((~keep).sum()),
    }
    return out, info
