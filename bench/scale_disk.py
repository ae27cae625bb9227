"""bench/scale.py's disk sizes: what its images and caches take, and the check that refuses a
stage before it writes more than the disk holds."""

from __future__ import annotations

import shutil
from pathlib import Path

from scale_table import GB  # bench/, beside this script


def cache_bytes(n: int, size: int, channels: int = 3) -> int:
    return n * channels * size * size


def jpeg_bytes(size: int) -> int:
    """Disk taken by one synthetic face JPEG (about 5.7 KB at 224 px, quality 75), rounded up
    to 4 KiB blocks, with room to spare."""
    return 4096 * -(-int(7000 * (size / 224) ** 2) // 4096)


def check_disk(folder: Path, needed: int, what: str) -> None:
    """Refuse (exit) when `folder`'s disk has less than `needed` bytes + 1 GB free."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed + GB > free:
        raise SystemExit(
            f"not enough disk for {what}: {needed / GB:.1f} GB needed (+1 GB to spare), "
            f"{free / GB:.1f} GB free in {folder}. Lower --n-224 (each 10,000 images is "
            f"{cache_bytes(10_000, 224) / GB:.1f} GB at 224 px) or --n, or use --work on a "
            "larger disk."
        )
