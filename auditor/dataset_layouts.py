"""A dataset's root known from what a folder holds, whatever the registry says: the write guard
(`auditor.write_guard`) refuses to write inside one, so that no output can be taken for data
(an image folder's new class, a file beside a label list) however the dataset is registered,
or if it is not registered at all.

A folder is a dataset's root when it holds

- `synth-faces.json`, the marker `audit synth-faces` writes into each output;
- RAF-DB's label list `EmoLabel/list_patition_label.txt`;
- FER2013's `fer2013.csv` or FERPlus's `fer2013new.csv`;
- AffectNet's `Manually_Annotated_file_lists/training.csv` or `train_set/annotations/`;
- a csv dataset's `labels.csv`: a header naming `path` and `label`, and a first row listing
  a file that exists beside it;
- class folders of images, as the `imagefolder` kind reads them (also under `train/`): at
  least two sub-folders holding image files themselves, and no other visible sub-folder, the
  one the output would be written in aside (it would become a class, or part of one).

Cheap: a few `stat` calls per folder, and for the class folders at most SCANNED entries of each.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from pathlib import Path

SYNTH_FACES_MARKER = "synth-faces.json"
LAYOUT_FILES = {
    SYNTH_FACES_MARKER: "an `audit synth-faces` output",
    "EmoLabel/list_patition_label.txt": "a RAF-DB label list",
    "fer2013.csv": "FER2013's fer2013.csv",
    "fer2013new.csv": "FERPlus's fer2013new.csv",
    "Manually_Annotated_file_lists/training.csv": "an AffectNet layout",
    "train_set/annotations": "an AffectNet layout",
}
# the image files an image folder's class holds (`auditor.datasets.imagefolder`'s extensions)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SCANNED = 64  # entries of a sub-folder looked at for an image file
MAX_SUBFOLDERS = 4096  # sub-folders of one folder looked at; past it, not a class folder layout


def layout_of(folder: Path, beside: str | None = None) -> str | None:
    """What in `folder` makes it a dataset's root (see the module docstring), or None; `beside`:
    the name of the sub-folder an output would be written in, which is not counted against an
    image folder."""
    for relative, what in LAYOUT_FILES.items():
        if os.path.lexists(folder / relative):
            return what
    if csv_labels(folder / "labels.csv"):
        return "a csv dataset's labels.csv"
    if class_folders(folder, beside) or class_folders(folder / "train", None):
        return "class folders of images"
    return None


def csv_labels(path: Path) -> bool:
    """Whether `path` is a regular file whose header names the columns `path` and `label` and
    whose first row lists a file that exists beside it (a corrected label file kept elsewhere
    lists paths relative to the dataset's root, not to its own folder)."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8", "replace").lstrip("\ufeff")
        rows = list(csv.reader(io.StringIO(head)))[:2]
        columns = [name.strip().lower() for name in rows[0]] if rows else []
        if len(rows) < 2 or "path" not in columns or "label" not in columns:
            return False
        listed = rows[1][columns.index("path")] if len(rows[1]) > columns.index("path") else ""
        return bool(listed.strip()) and (path.parent / listed.strip()).is_file()
    except (OSError, ValueError, csv.Error):  # ValueError: a NUL in the listed path
        return False


def holds_images(folder: str) -> bool:
    """Whether one of the first SCANNED entries of `folder` is an image file (a class folder's
    own images: a folder holding only folders of images, such as a parent of many image
    folders, is not a class)."""
    try:
        with os.scandir(folder) as entries:
            return any(
                entry.name.lower().endswith(IMAGE_SUFFIXES)
                for entry in itertools.islice(entries, SCANNED)
            )
    except OSError:
        return False


def class_folders(folder: Path, beside: str | None) -> bool:
    """Whether `folder`'s visible sub-folders look like an image folder's classes: at least two
    hold images, and every one does, `beside` aside (when it holds none)."""
    with_images = 0
    try:
        with os.scandir(folder) as entries:
            for k, entry in enumerate(entries):
                if k >= MAX_SUBFOLDERS:
                    return False
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                if holds_images(entry.path):
                    with_images += 1
                elif entry.name != beside:
                    return False
    except OSError:
        return False
    return with_images >= 2


def dataset_root_holding(path: Path, *, itself: bool = True) -> tuple[Path, str] | None:
    """The nearest folder at or above the resolved `path` (strictly above with `itself` False)
    that is a dataset's root by what it holds: (that folder, why), or None."""
    chain = [path, *path.parents] if itself else list(path.parents)
    below = path.name if not itself else None
    for folder in chain:
        if folder.is_dir():
            what = layout_of(folder, below)
            if what is not None:
                return folder, what
        below = folder.name
    return None
