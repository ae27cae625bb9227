"""Images and labels held in memory, for `auditor.api.audit((images, labels))`: written once as
a folder of the `csv` dataset kind, so that the run, and every later command on it (review,
export, apply, --resume), reads files as for any folder dataset.

The folder is `$AUDIT_CACHE_DIR/arrays/<digest>/` (`auditor.fsutil.cache_dir`), the digest of
the pixels and labels: the same arrays are written once, reused by every later run. It holds
one PNG per image (`000000.png`, row order) and `labels.csv` (`path,label`, the labels as
integer class ids, so the run's classes are "0" to "K-1" in the arrays' own order). It is
written under a temporary name and renamed whole: a folder of that name is complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from auditor.errors import UserError
from auditor.write_guard import checked_cache_dir


def checked_arrays(images: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, H, W] or [N, H, W, 1|3], int64 labels [N]), refused (UserError) unless
    they are arrays of those shapes and kinds, with labels of at least 2 classes."""
    images, labels = np.asarray(images), np.asarray(labels)
    shape_ok = images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))
    if images.dtype != np.uint8 or not shape_ok or len(images) < 2:
        raise UserError(
            f"audit: images of dtype {images.dtype} and shape {images.shape}; give uint8 pixels "
            "[N, H, W] or [N, H, W, 1 or 3], N >= 2"
        )
    if labels.dtype.kind not in "iu" or labels.shape != (len(images),):
        raise UserError(
            f"audit: labels of dtype {labels.dtype} and shape {labels.shape}; give integer "
            f"class ids [{len(images)}], one per image"
        )
    if labels.min() < 0 or len(np.unique(labels)) < 2:
        raise UserError("audit: labels must be class ids 0..K-1 of at least 2 classes")
    return images, labels.astype(np.int64)


def array_folder(images: object, labels: object) -> Path:
    """The folder holding `images` and `labels` (see the module docstring), written if new."""
    images, labels = checked_arrays(images, labels)
    digest = hashlib.sha256()
    for part in (images, labels):
        digest.update(str(part.shape).encode())
        digest.update(np.ascontiguousarray(part).tobytes())
    folder = checked_cache_dir() / "arrays" / digest.hexdigest()[:16]
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=folder.parent))
    try:
        rows = ["path,label"]
        for n, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            name = f"{n:06d}.png"
            grey = pixels.ndim == 3 and pixels.shape[-1] == 1
            Image.fromarray(pixels[..., 0] if grey else pixels).save(staging / name)
            rows.append(f"{name},{label}")
        (staging / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        os.rename(staging, folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not folder.is_dir():  # else written meanwhile by another process: the same arrays
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
