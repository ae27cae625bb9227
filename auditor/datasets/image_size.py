"""The images' own size: the largest side over a seeded sample of a dataset's image files.

Only each sampled file's header is read (PIL opens lazily), so it takes about the same time for
a folder of 300,000 images as for one of 300. The files are the table's `FileImages.paths`, the
paths its loader already resolved and kept inside the dataset root, which decoding opens too.
A row cropped to a face box has the box's size (decoding crops before resizing). A file that
cannot be read is skipped here: decoding reports it later.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from auditor.datasets.table import FileImages, SampleTable


def sample_rows(n: int, sample: int, seed: int) -> np.ndarray:
    """A seeded random choice of at most `sample` of the rows 0 .. n-1, without repeats, sorted
    (files read in the table's order)."""
    if n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))


def own_side(path: Path, box: tuple[int, int, int, int] | None = None) -> int | None:
    """The largest side of the image `path` holds, from its header (of `box`, the crop
    (x, y, width, height), when given), or None when the file cannot be read as an image.
    EXIF orientation is not applied: turning an image swaps its sides, not its largest one."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None  # missing, not an image, truncated header, too large: decoding says which
    if box is not None:
        width, height = box[2], box[3]
    return max(width, height)


def own_image_size(table: SampleTable, sample: int = 256, seed: int = 0) -> int | None:
    """The largest side, in pixels, over a seeded random sample of at most `sample` of the
    table's image files; None when its images are not files (arrays already in memory) or no
    sampled file can be read."""
    if not isinstance(table.images, FileImages):
        return None
    paths, boxes = table.images.paths, table.images.boxes
    sides = [
        own_side(paths[row], None if boxes is None else boxes[row])
        for row in sample_rows(len(paths), sample, seed)
    ]
    return max((s for s in sides if s is not None), default=None)
