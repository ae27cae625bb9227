"""Images read from the on-disk cache by rows, on demand: for caches that do not fit in memory.

The cache file is a plain `.npy` (uint8 [N, C, S, S], C order; `np.load` opens it). A
`PixelMap` reads the rows a caller asks for with `os.pread` into a fresh array: nothing is
memory-mapped, so neither the resident memory nor the address space grows with N (a process
under an RLIMIT_AS smaller than the cache can still train from it), and the page cache decides
what stays in memory. Rows of one request are read in file order (sorted, consecutive rows in
one read) and handed back in the order asked.

`PixelMap` answers the few tensor operations the training code uses on images: `len`, `shape`,
`map[rows]` / `map[start:stop]` (a uint8 torch tensor, read now) and `take(rows)` (a lazy
subset, nothing read). `Pixels` is either an in-memory tensor or a map.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch


def write_header(path: Path, shape: tuple[int, ...]) -> int:
    """Create `path` as a sparse `.npy` file of uint8 zeros of `shape`; the data offset."""
    header = {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, header)
        offset = f.tell()
        f.truncate(offset + int(np.prod(shape)))
    return offset


def read_header(path: Path) -> tuple[tuple[int, ...], int]:
    """(shape, data offset) of a uint8 C-order `.npy` file; ValueError when it is not one."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(f)
        if fortran or dtype != np.uint8:
            raise ValueError(f"{path} is not a uint8 C-order array")
        return tuple(shape), f.tell()


def pread_into(fd: int, buffer: np.ndarray, offset: int) -> None:
    """Fill the contiguous `buffer` with the file's bytes from `offset` (short reads retried)."""
    view = memoryview(buffer.reshape(-1))
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise OSError(f"the image cache ends {len(view) - done} bytes early")
        done += got


class PixelMap:
    """uint8 images [N, C, S, S] of a cache file (or a subset of its rows), read on demand."""

    def __init__(self, path: Path, rows: np.ndarray | None = None) -> None:
        self.path = Path(path)
        shape, self._offset = read_header(self.path)
        self._row_shape = shape[1:]
        self._row_bytes = int(np.prod(self._row_shape))
        self._rows = np.arange(shape[0], dtype=np.int64) if rows is None else rows
        self._fd = os.open(self.path, os.O_RDONLY)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self._rows), *self._row_shape))

    def positions(self, key) -> np.ndarray:
        """Positions (0..len-1) named by a slice, or an int / bool array or tensor."""
        if isinstance(key, slice):
            return np.arange(len(self._rows))[key]
        key = key.cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        return np.flatnonzero(key) if key.dtype == bool else key.astype(np.int64, copy=False)

    def take(self, key) -> PixelMap:
        """The subset of rows `key` names, as a map (nothing is read)."""
        subset = PixelMap.__new__(PixelMap)
        subset.path, subset._offset = self.path, self._offset
        subset._row_shape, subset._row_bytes = self._row_shape, self._row_bytes
        subset._rows = self._rows[self.positions(key)]
        subset._fd = os.dup(self._fd)
        return subset

    def __getitem__(self, key) -> torch.Tensor:
        """uint8 [len(key), C, S, S] of the rows `key` names, read from the file now."""
        wanted = self._rows[self.positions(key)]
        if len(wanted) == 0:
            return torch.empty((0, *self._row_shape), dtype=torch.uint8)
        order = np.argsort(wanted, kind="stable")
        ordered = wanted[order]
        out = np.empty((len(wanted), self._row_bytes), dtype=np.uint8)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1  # runs of consecutive file rows
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)], strict=True):
            at, first = self._offset + int(ordered[lo]) * self._row_bytes, int(order[lo])
            if np.array_equal(order[lo:hi], np.arange(first, first + hi - lo)):
                pread_into(self._fd, out[first : first + hi - lo], at)  # in place: in order
            else:
                run = np.empty((hi - lo, self._row_bytes), dtype=np.uint8)
                pread_into(self._fd, run, at)
                out[order[lo:hi]] = run
        return torch.from_numpy(out).view(len(wanted), *self._row_shape)


Pixels = torch.Tensor | PixelMap


def take(pixels: Pixels, rows: np.ndarray) -> Pixels:
    """The images at `rows`: copied for an in-memory tensor, a lazy subset of a map."""
    if isinstance(pixels, PixelMap):
        return pixels.take(rows)
    return pixels[torch.as_tensor(rows)]


def in_memory(pixels: Pixels) -> torch.Tensor:
    """The images as one in-memory tensor (a map is read whole: for callers that need every
    pixel at once, such as the instance-dependent noise model's features)."""
    return pixels[:] if isinstance(pixels, PixelMap) else pixels


def chunks(pixels: Pixels, rows: int = 1024) -> Iterator[torch.Tensor]:
    """uint8 [<= rows, C, S, S] blocks of the images in order: a bounded-memory pass."""
    for start in range(0, len(pixels), rows):
        yield pixels[start : start + rows]
