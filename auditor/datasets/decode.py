"""Image files -> uint8 RGB pixels, and the cache builder's unit of work (a chunk of rows decoded
and written at its place in the cache file). Imports no torch, so the decoding processes
(`auditor.datasets.cache.build_cache`, started with `spawn`) start in about a second (the
`auditor.datasets` package, pandas included, is what they import).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Bumped whenever decode_file's pixels change for the same file, so that caches built by an
# older decoder are not reused (it is part of the cache's key, `auditor.datasets.cache`).
# 2: the EXIF orientation is applied.
DECODER_VERSION = 2


class UndecodableImage(Exception):
    """An image file that cannot become pixels; the message is the reason."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. 16-bit and float greyscale are rescaled to 0..255 first (a plain
    convert would clip them); palette and alpha images are converted (alpha dropped)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.round().astype(np.uint8))
    return img.convert("RGB")


def decode_file(path: Path, size: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """One image file -> uint8 [3, size, size] RGB, turned upright as its EXIF orientation says
    (as a phone's photo is shown), then cropped to `box` (x, y, w, h) when given.
    Raises UndecodableImage with the reason (missing, empty, truncated, not an image, too
    large: over PIL's decompression-bomb limit)."""
    try:
        if Path(path).stat().st_size == 0:
            raise UndecodableImage("empty file")
        with Image.open(path) as img:
            img.load()
            img = to_rgb(ImageOps.exif_transpose(img))
            if box is not None:
                x, y, w, h = box
                img = img.crop((x, y, x + w, y + h))
            img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except FileNotFoundError:
        raise UndecodableImage("missing file") from None
    except Image.DecompressionBombError as err:
        raise UndecodableImage(f"too large ({err})") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise UndecodableImage(f"{type(err).__name__}: {err}") from None


def decode_rows(
    cache: str, offset: int, start: int, size: int, paths: list[str], boxes: list | None
) -> dict[int, str]:
    """Decode `paths` (cropped to `boxes` when given) and write them as rows start, start + 1,
    ... of the cache file `cache`, whose data begins at `offset`; {row: reason} of the rows that
    could not be decoded (written as zeros)."""
    block = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    failures: dict[int, str] = {}
    for k, path in enumerate(paths):
        try:
            block[k] = decode_file(Path(path), size, boxes[k] if boxes else None)
        except UndecodableImage as err:
            failures[start + k] = str(err)
    view, at = memoryview(block.reshape(-1)), offset + start * 3 * size * size
    fd = os.open(cache, os.O_WRONLY)
    try:
        while view:
            written = os.pwrite(fd, view, at)
            view, at = view[written:], at + written
    finally:
        os.close(fd)
    return failures
