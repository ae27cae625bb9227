"""RAF-DB basic expressions (Li et al. 2017) in its released layout:

    <root>/EmoLabel/list_patition_label.txt   `train_00001.jpg 5` (labels 1..7)
    <root>/Image/aligned/train_00001_aligned.jpg  (100x100 aligned RGB faces)

Label ids: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral (we
subtract 1). The split is the name's prefix (`train_` / `test_`). A noise file (EAC's
`noise01.txt`...) has the same format and holds the train rows: its labels become the given
labels and the clean list becomes the truth. Sample ids are the stems (`train_00001`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from auditor.datasets.kinds import DatasetKind, LabelFileFormat, register_kind
from auditor.datasets.labelfile import parse_name_label, quotable, shown
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import FileImages, SampleTable
from auditor.errors import UserError
from auditor.fsutil import inside_root

NAME = re.compile(r"^(train|test)_[0-9]+\.jpg$")


def paths(entry: DatasetEntry, root: Path) -> tuple[Path, Path]:
    label_file = root / entry.options.get("label_file", "EmoLabel/list_patition_label.txt")
    image_dir = root / entry.options.get("image_dir", "Image/aligned")
    return label_file, image_dir


def not_found_message(entry: DatasetEntry, root: Path | None) -> str:
    shown = root if root is not None else "<root>"
    label_rel = entry.options.get("label_file", "EmoLabel/list_patition_label.txt")
    image_rel = entry.options.get("image_dir", "Image/aligned")
    return (
        f"RAF-DB not found at {shown}. The raf-db loader needs:\n"
        f"  {shown}/{label_rel}   lines like 'train_00001.jpg 5' (labels 1..7)\n"
        f"  {shown}/{image_rel}/train_00001_aligned.jpg ...   the aligned 100x100 faces\n"
        f"Point at your copy: {entry.root_hint()}. RAF-DB is licensed and is never downloaded "
        "or replaced by other data; `audit synth-faces DIR` writes synthetic faces in this layout."
    )


def status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    if root is None or not paths(entry, root)[0].is_file():
        return False, "label file not found"
    return True, f"{len(paths(entry, root)[0].read_bytes().split()) // 2} labelled images"


def load(entry: DatasetEntry, root: Path | None, noise_file: Path | None = None) -> SampleTable:
    classes = entry.class_list()
    if root is None or not paths(entry, root)[0].is_file():
        raise UserError(not_found_message(entry, root))
    label_file, image_dir = paths(entry, root)
    quote = quotable(label_file, root)
    rows = parse_name_label(label_file, num_classes=len(classes), quote=quote)
    for name, _ in rows:
        if not NAME.match(name):
            raise UserError(
                f"{label_file}: {shown(name, quote)} is not a RAF-DB name "
                "(train_00001.jpg / test_0001.jpg)"
            )
    image_rel = image_dir.relative_to(root)
    files = [
        inside_root(
            root, str(image_rel / f"{name[:-4]}_aligned.jpg"), where=f"{label_file} ({name})"
        )
        for name, _ in rows
    ]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(
            f"{len(missing)} images listed in {label_file} are missing, e.g. {missing[0]}"
        )
    labels = np.array([y for _, y in rows], dtype=np.int64)
    true_labels = None
    if noise_file is not None:
        true_labels = labels.copy()
        labels = apply_noise_file(rows, labels, Path(noise_file), num_classes=len(classes))
    return SampleTable(
        name=entry.name,
        class_names=classes,
        sample_ids=np.array([name[:-4] for name, _ in rows]),
        filepaths=np.array([str(f) for f in files]),
        labels=labels,
        split=np.array([name.split("_", 1)[0] for name, _ in rows]),
        images=FileImages(files),
        true_labels=true_labels,
        truth_source=None if true_labels is None else "file",
        extra={"noise_file": str(noise_file)} if noise_file else {},
    )


def apply_noise_file(
    rows: list[tuple[str, int]], labels: np.ndarray, noise_file: Path, *, num_classes: int
) -> np.ndarray:
    """The given labels with the train rows replaced by the noise file's labels. The noise file
    must list exactly the train images of the clean list."""
    if not noise_file.is_file():
        raise UserError(f"--noise-file {noise_file} does not exist")
    noisy = dict(parse_name_label(noise_file, num_classes=num_classes))
    train = [name for name, _ in rows if name.startswith("train_")]
    unknown = sorted(set(noisy) - set(train))
    missing = [name for name in train if name not in noisy]
    if unknown or missing:
        raise UserError(
            f"{noise_file} must list exactly the {len(train)} train images of the label file: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unknown)} unknown "
            f"(e.g. {unknown[:3]})"
        )
    return np.array(
        [noisy.get(name, y) for name, y in zip([n for n, _ in rows], labels, strict=True)]
    )


register_kind(
    DatasetKind(
        name="raf-db",
        load=load,
        status=status,
        reads_noise_file=True,
        label_file=LabelFileFormat.RAFDB_LIST,
        options={"label_file": str, "image_dir": str},
    )
)
