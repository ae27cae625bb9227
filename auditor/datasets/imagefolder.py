"""A user's own images, one sub-folder per class:

    <root>/<class>/<image>                    (everything is training data), or
    <root>/train/<class>/<image> and <root>/test/<class>/<image>   (`val/` is read as test)

Class names are the sorted folder names of the training split, unless the registry entry lists
`classes`. Sample ids are the paths relative to the root. Files are kept only if they stay
inside the root after resolving symlinks; a name that would not survive the run's CSV files
(not UTF-8, a control character, a leading or trailing space) is refused, naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auditor.datasets.kinds import DatasetKind, register_kind
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import FileImages, SampleTable
from auditor.errors import UserError
from auditor.fsutil import inside_root

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def split_dirs(root: Path) -> dict[str, Path]:
    splits = {"train": root / "train"} if (root / "train").is_dir() else {"train": root}
    for name in ("test", "val"):
        if (root / "train").is_dir() and (root / name).is_dir():
            splits["test"] = root / name
            break
    return splits


def class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    if root is None or not root.is_dir():
        return False, "no root given" if root is None else "root not found"
    return True, f"{len(class_dirs(split_dirs(root)['train']))} class folders"


def load(entry: DatasetEntry, root: Path | None) -> SampleTable:
    if root is None or not root.is_dir():
        raise UserError(
            f"imagefolder needs a folder of class sub-folders ({root or 'none given'}); "
            f"{entry.root_hint()}"
        )
    splits = split_dirs(root)
    classes = list(entry.classes) if entry.classes else class_dirs(splits["train"])
    if len(classes) < 2:
        raise UserError(f"{splits['train']}: found {len(classes)} class folders, need at least 2")
    ids, files, labels, split_of = [], [], [], []
    for split, folder in splits.items():
        for label, name in enumerate(classes):
            class_dir = folder / name
            if not class_dir.is_dir():
                continue
            for path in sorted(class_dir.rglob("*")):
                broken_link = path.is_symlink() and not path.exists()
                if path.suffix.lower() not in EXTENSIONS or not (path.is_file() or broken_link):
                    continue  # a broken link is kept: decoding skips and lists it as missing
                rel = path.relative_to(root).as_posix()
                files.append(inside_root(root, rel, where=f"{class_dir}"))
                ids.append(rel)
                labels.append(label)
                split_of.append(split)
    if not any(s == "train" for s in split_of):
        raise UserError(f"{splits['train']}: no images with extensions {sorted(EXTENSIONS)} found")
    return SampleTable(
        name=entry.name,
        class_names=classes,
        sample_ids=np.array(ids),
        filepaths=np.array([str(f) for f in files]),
        labels=np.array(labels, dtype=np.int64),
        split=np.array(split_of),
        images=FileImages(files),
    )


register_kind(DatasetKind(name="imagefolder", load=load, status=status, options={}))
