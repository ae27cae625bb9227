"""The tensor cache: every image decoded once into uint8 [N, C, S, S] at the working size.

File datasets are decoded with PIL once and stored as `.npy` under the cache folder
(`$AUDIT_CACHE_DIR`, default `~/.cache/audit`), keyed by the dataset fingerprint and the size;
later runs memory-map it. In-memory datasets are only resized.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from auditor.datasets.table import ArrayImages, SampleTable
from auditor.errors import UserError
from auditor.fsutil import atomic_path


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


def decode_file(path: Path, size: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """One image file -> uint8 [3, size, size] RGB, cropped to `box` (x, y, w, h) when given."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if box is not None:
                x, y, w, h = box
                img = img.crop((x, y, x + w, y + h))
            img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot decode image {path}: {err}") from None


def load_pixels(table: SampleTable, size: int) -> torch.Tensor:
    """uint8 [N, C, size, size] for every row of `table`, in row order."""
    if isinstance(table.images, ArrayImages):
        return resize_array(table.images.pixels, size)
    target = cache_dir() / f"{table.name}-{table.fingerprint()}-{size}.npy"
    if target.is_file():
        return torch.from_numpy(np.load(target, mmap_mode="r").copy())
    pixels = np.empty((len(table), 3, size, size), dtype=np.uint8)
    boxes = table.images.boxes or [None] * len(table)
    for i, (path, box) in enumerate(zip(table.images.paths, boxes, strict=True)):
        pixels[i] = decode_file(path, size, box)
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.save(f, pixels)
    return torch.from_numpy(pixels)
