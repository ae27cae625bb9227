"""The tensor cache: every image decoded once into uint8 [N, C, S, S] at the working size.

File datasets are decoded with PIL once and stored as `.npy` under the cache folder
(`$AUDIT_CACHE_DIR`, default `~/.cache/audit`), keyed by the dataset fingerprint and the size;
later runs memory-map it. In-memory datasets are only resized.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from auditor.datasets.table import ArrayImages, SampleTable
from auditor.fsutil import atomic_path, write_text_atomic


def cache_dir() -> Path:
    return Path(os.environ.get("AUDIT_CACHE_DIR", Path.home() / ".cache" / "audit"))


def resize_array(pixels: np.ndarray, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 [N, H, W] or [N, H, W, C] -> uint8 [N, C, size, size] (bilinear, antialiased)."""
    x = torch.from_numpy(np.ascontiguousarray(pixels))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[-2:] == (size, size):
        return x.contiguous()
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk].float()
        part = F.interpolate(
            part, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + chunk] = part.round().clamp(0, 255).to(torch.uint8)
    return out


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
    """One image file -> uint8 [3, size, size] RGB, cropped to `box` (x, y, w, h) when given.
    Raises UndecodableImage with the reason (missing, empty, truncated, not an image, too
    large: over PIL's decompression-bomb limit)."""
    try:
        if Path(path).stat().st_size == 0:
            raise UndecodableImage("empty file")
        with Image.open(path) as img:
            img.load()
            img = to_rgb(img)
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


def load_pixels(table: SampleTable, size: int) -> tuple[torch.Tensor, dict[int, str]]:
    """(uint8 [N, C, size, size] for every row of `table` in row order, {row: reason} for the
    rows whose image could not be decoded: their pixels are zeros)."""
    if isinstance(table.images, ArrayImages):
        return resize_array(table.images.pixels, size), {}
    target = cache_dir() / f"{table.name}-{table.fingerprint()}-{size}.npy"
    failures_file = target.with_suffix(".failures.json")
    if target.is_file() and failures_file.is_file():
        failures = {int(k): v for k, v in json.loads(failures_file.read_text()).items()}
        return torch.from_numpy(np.load(target, mmap_mode="r").copy()), failures
    pixels = np.zeros((len(table), 3, size, size), dtype=np.uint8)
    failures: dict[int, str] = {}
    boxes = table.images.boxes or [None] * len(table)
    for i, (path, box) in enumerate(zip(table.images.paths, boxes, strict=True)):
        try:
            pixels[i] = decode_file(path, size, box)
        except UndecodableImage as err:
            failures[i] = str(err)
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.save(f, pixels)
    write_text_atomic(failures_file, json.dumps(failures))
    return torch.from_numpy(pixels), failures
