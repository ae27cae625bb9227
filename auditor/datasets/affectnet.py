"""AffectNet (Mollahosseini et al., 2017) in either layout its users have.

Official release, under the root:

    Manually_Annotated_file_lists/training.csv, validation.csv
        subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,
        expression,valence,arousal
    Manually_Annotated_Images/<subDirectory_filePath>   (cropped to the face box)

Re-packaged variant:

    train_set/images/<N>.jpg, train_set/annotations/<N>_exp.npy   (and val_set/ alike)

Expression codes: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger,
7 Contempt, 8 None, 9 Uncertain, 10 No-Face. With `classes_count: 7` (the EAC paper's
protocol) contempt is dropped too; codes 8-10 are always dropped and counted.
training -> train, validation -> test. The `.npy` annotations are read without pickles.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

import numpy as np

from auditor.datasets.kinds import DatasetKind, register_kind
from auditor.datasets.label_cells import LabelReader, refuse_same_file
from auditor.datasets.labelfile import int_column, quotable, read_csv_rows
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import FileImages, SampleTable
from auditor.errors import UserError
from auditor.fsutil import inside_root

CLASSES = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
NON_EMOTION = {8: "none", 9: "uncertain", 10: "no_face"}
OFFICIAL = {
    "train": "Manually_Annotated_file_lists/training.csv",
    "test": "Manually_Annotated_file_lists/validation.csv",
}
VARIANT = {"train": "train_set", "test": "val_set"}


def layout(root: Path | None) -> str | None:
    if root is None:
        return None
    if (root / OFFICIAL["train"]).is_file():
        return "official"
    if (root / VARIANT["train"] / "annotations").is_dir():
        return "variant"
    return None


def status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    kind = layout(root)
    return (True, f"{kind} layout") if kind else (False, "no AffectNet layout found")


def official_rows(
    root: Path, split: str
) -> list[tuple[str, str, int, tuple[int, int, int, int] | None]]:
    path = root / OFFICIAL[split]
    if not path.is_file():
        return []
    box_columns = ["face_x", "face_y", "face_width", "face_height"]
    quote = quotable(path, root)
    frame, lines = read_csv_rows(
        path, ["subDirectory_filePath", *box_columns, "expression"], quote=quote
    )
    boxes = np.stack(
        [int_column(frame[c], lines, path, c, quote=quote) for c in box_columns], axis=1
    )
    codes = expressions(path, quote).read_column(frame["expression"].tolist(), lines)
    files = frame["subDirectory_filePath"].tolist()
    rels = [f"Manually_Annotated_Images/{name}" for name in files]
    refuse_same_file([posixpath.normpath(rel) for rel in rels], files, lines, path, quote)
    return [
        (name, rel, code, tuple(box) if box[2] > 0 and box[3] > 0 else None)
        for name, rel, code, box in zip(files, rels, codes.tolist(), boxes.tolist(), strict=True)
    ]


def variant_rows(root: Path, split: str) -> list[tuple[str, str, int, None]]:
    folder = root / VARIANT[split]
    if not (folder / "annotations").is_dir():
        return []
    rows = []
    annotations = sorted(
        (folder / "annotations").glob("*_exp.npy"), key=lambda p: (len(p.name), p.name)
    )
    reader = expressions(folder / "annotations", all(quotable(a, root) for a in annotations))
    for ann in annotations:
        stem = ann.name[: -len("_exp.npy")]
        try:
            value = np.load(ann, allow_pickle=False)
        except ValueError as err:
            raise UserError(f"{ann}: not a plain .npy array ({err})") from None
        cell = str(value.reshape(-1)[0]) if value.size == 1 else f"an array of shape {value.shape}"
        rows.append(
            (
                f"{VARIANT[split]}/{stem}",
                f"{VARIANT[split]}/images/{stem}.jpg",
                reader.read(cell, ann.name),
                None,
            )
        )
    return rows


def expressions(source: Path, quote: bool) -> LabelReader:
    """The reader of one list's expression codes (0..10, see the module docstring)."""
    return LabelReader(source, 1 + max(NON_EMOTION), quote=quote)


def load(entry: DatasetEntry, root: Path | None) -> SampleTable:
    kind = layout(root)
    if kind is None:
        raise UserError(
            f"AffectNet not found at {root or '<root>'}. The affectnet loader reads either\n"
            f"  {OFFICIAL['train']} and {OFFICIAL['test']} with Manually_Annotated_Images/, or\n"
            "  train_set/images/<N>.jpg with train_set/annotations/<N>_exp.npy (and val_set/)\n"
            f"Point at the folder: {entry.root_hint()}. AffectNet is licensed: request it from its "
            "authors."
        )
    num_classes = entry.options.get("classes_count", 7)
    if num_classes not in (7, 8):
        raise UserError(f"{entry.where()}: `classes_count` must be 7 or 8, not {num_classes}")
    reader = official_rows if kind == "official" else variant_rows
    ids, files, labels, splits, boxes = [], [], [], [], []
    dropped: dict[str, int] = {}
    for split in ("train", "test"):
        for sample_id, rel, code, box in reader(root, split):
            if code in NON_EMOTION or code >= num_classes:
                reason = NON_EMOTION.get(code, "contempt")
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            path = inside_root(root, rel, where=f"AffectNet {split} row {sample_id}")
            if not path.is_file():
                raise UserError(f"AffectNet image {path} is listed but missing")
            ids.append(sample_id)
            files.append(path)
            labels.append(code)
            splits.append(split)
            boxes.append(box)
    if not any(s == "train" for s in splits):
        raise UserError(f"{root}: no usable AffectNet training rows (dropped: {dropped})")
    return SampleTable(
        name=entry.name,
        class_names=CLASSES[:num_classes],
        sample_ids=np.array(ids),
        filepaths=np.array([str(f) for f in files]),
        labels=np.array(labels, dtype=np.int64),
        split=np.array(splits),
        images=FileImages(files, boxes if any(b is not None for b in boxes) else None),
        extra={"layout": kind, "dropped": dropped},
    )


register_kind(
    DatasetKind(name="affectnet", load=load, status=status, options={"classes_count": int})
)
