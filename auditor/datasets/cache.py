"""The image cache: every image decoded once into uint8 [N, C, S, S] at the working size.

File datasets are decoded with PIL by `--workers` processes straight into a `.npy` file under
the cache folder (`$AUDIT_CACHE_DIR`, default `~/.cache/audit`), keyed by the dataset's image
files (paths, sizes, modification times, face boxes), the size and the decoder's version. The
whole array is never in memory while it is built: each worker decodes a chunk of rows and writes
it at its place in the file. A build records each finished chunk in a progress file, so an
interrupted build continues where it stopped; the finished file gets its final name and then a
marker (written last) with its shape and the images that could not be decoded. Only a file with
a marker that matches its shape and size is used; anything else is rebuilt.

A later run reads the cache into memory when it fits (half of the memory this process may still
take: `memory_budget`), otherwise trains from it as a `PixelMap`, which reads each batch's rows
from the file (`auditor.datasets.pixel_map`). In-memory datasets are only resized.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from auditor.datasets.decode import DECODER_VERSION, decode_rows
from auditor.datasets.pixel_map import PixelMap, Pixels, pread_into, read_header, write_header
from auditor.datasets.table import ArrayImages, SampleTable
from auditor.errors import UserError
from auditor.fsutil import cache_dir, open_lock, write_text_atomic
from auditor.resources import cores, memory_budget

CHUNK = 256  # rows decoded and written together by one worker


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


def cache_stem(table: SampleTable, size: int) -> Path:
    """The cache files' common path: dataset name, image-file fingerprint, size and the
    decoder's version (a cache an older decoder built is not reused)."""
    return cache_dir() / f"{table.name}-{table.images.fingerprint()}-d{DECODER_VERSION}-{size}"


def part(stem: Path, ext: str) -> Path:
    """One of the cache's files: `<stem><ext>` (.npy, .done.json, .partial.npy, .progress,
    .lock)."""
    return stem.parent / (stem.name + ext)


def check_room(folder: Path, needed: int) -> None:
    """Refuse a build the free disk space cannot hold (the file is written sparse, so a full
    disk would only show halfway through)."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UserError(
            f"the image cache needs {needed / 1e9:.1f} GB more in {folder}, which has "
            f"{free / 1e9:.1f} GB free: free some space, point AUDIT_CACHE_DIR at a larger disk, "
            "or choose a smaller --image-size"
        )


def read_marker(stem: Path) -> dict | None:
    """The finished cache's marker when the marker, the file and its header agree; else None."""
    try:
        marker = json.loads(part(stem, ".done.json").read_text())
        shape, offset = read_header(part(stem, ".npy"))
        size = part(stem, ".npy").stat().st_size
        if list(shape) != marker["shape"] or size != offset + int(np.prod(shape)):
            return None
        return marker
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_cache(table: SampleTable, size: int, workers: int | None = None) -> Path:
    """Decode every image of `table` (FileImages) into the cache file at `size` with `workers`
    processes (default: one per core this process may use), unless a finished cache exists; its
    stem (`cache_stem`). Resumable: chunks recorded in `<stem>.progress` are not decoded again.
    One build per cache at a time: other processes wait on `<stem>.lock`, then use the finished
    file."""
    stem = cache_stem(table, size)
    stem.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(open_lock(part(stem, ".lock")), "r+b") as lock:  # never through a symlink
        fcntl.flock(lock, fcntl.LOCK_EX)
        if read_marker(stem) is not None:
            return stem
        n, shape = len(table), [len(table), 3, size, size]
        partial, progress = part(stem, ".partial.npy"), part(stem, ".progress")
        part(stem, ".done.json").unlink(missing_ok=True)  # a stale marker never meets the new file
        done, failures = read_progress(progress, shape, partial)
        if not done:
            progress.unlink(missing_ok=True)  # no record may outlive the file it describes
            offset = write_header(partial, tuple(shape))
            progress.write_text(json.dumps({"shape": shape, "chunk": CHUNK}) + "\n")
        else:
            offset = read_header(partial)[1]
            resumed = min(n, len(done) * CHUNK)
            print(
                f"audit: resuming the image cache of {table.name!r}: {resumed:,} of {n:,} "
                "images were decoded before",
                file=sys.stderr,
            )
        todo = [c for c in range(-(-n // CHUNK)) if c not in done]
        check_room(stem.parent, len(todo) * CHUNK * 3 * size * size)
        images = table.images
        jobs = [
            (
                str(partial),
                offset,
                c * CHUNK,
                size,
                [str(p) for p in images.paths[c * CHUNK : (c + 1) * CHUNK]],
                images.boxes[c * CHUNK : (c + 1) * CHUNK] if images.boxes else None,
            )
            for c in todo
        ]
        record_chunks(jobs, workers or cores(), partial, progress, failures, n)
        os.replace(partial, part(stem, ".npy"))
        marker = {"shape": shape, "failures": {str(k): v for k, v in sorted(failures.items())}}
        write_text_atomic(part(stem, ".done.json"), json.dumps(marker))  # last
        progress.unlink()
    return stem


def read_progress(
    progress: Path, shape: list[int], partial: Path
) -> tuple[set[int], dict[int, str]]:
    """(chunks done, their failures) of an interrupted build of the same shape; nothing (a
    fresh start) when there is none or it does not match. A torn record (a build killed while
    appending one) ends the reading, and the file is rewritten without it."""
    try:
        lines = progress.read_text().splitlines()
        head = json.loads(lines[0])
        if head != {"shape": shape, "chunk": CHUNK} or read_header(partial)[0] != tuple(shape):
            return set(), {}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return set(), {}
    done, failures, kept = set(), {}, lines[:1]
    for line in lines[1:]:
        try:
            entry = json.loads(line)
            chunk, fails = int(entry["chunk"]), {int(k): v for k, v in entry["failures"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            break
        done.add(chunk)
        failures |= fails
        kept.append(line)
    if len(kept) < len(lines):
        write_text_atomic(progress, "\n".join(kept) + "\n")
    return done, failures


def record_chunks(
    jobs: list[tuple], workers: int, partial: Path, progress: Path, failures: dict, n: int
) -> None:
    """Run the `decode_rows` jobs (in this process, or in `workers` spawned processes) and append
    each finished chunk to `progress` once its rows are on disk (fdatasync before the append).
    A decoding process that dies is an error that says the build resumes; never a hang."""
    start = last_note = time.monotonic()
    pending: list[tuple[int, dict[int, str]]] = []
    with open(progress, "a") as log, open(partial, "rb+") as data:

        def flush() -> None:
            os.fdatasync(data.fileno())
            for chunk, fails in pending:
                log.write(json.dumps({"chunk": chunk, "failures": fails}) + "\n")
            log.flush()
            pending.clear()

        def finished(job: tuple, fails: dict[int, str], k: int) -> None:
            nonlocal last_note
            failures.update(fails)
            pending.append((job[2] // CHUNK, {str(r): v for r, v in fails.items()}))
            if len(pending) >= 8:
                flush()
            if time.monotonic() - last_note > 30:
                last_note, rate = time.monotonic(), k * CHUNK / (time.monotonic() - start)
                print(
                    f"audit: decoding images into the cache: {min(n, k * CHUNK):,} of "
                    f"{len(jobs) * CHUNK:,} ({rate:,.0f}/s)",
                    file=sys.stderr,
                )

        if workers <= 1 or len(jobs) <= 1:
            for k, job in enumerate(jobs, 1):
                finished(job, decode_rows(*job), k)
        else:
            context = multiprocessing.get_context("spawn")  # no inherited threads or locks
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
                futures = {pool.submit(decode_rows, *job): job for job in jobs}
                try:
                    for k, done in enumerate(as_completed(futures), 1):
                        finished(futures[done], done.result(), k)
                except BrokenProcessPool:
                    flush()
                    raise UserError(
                        "a process decoding images into the cache died (out of memory?); "
                        "run again: the cache build resumes where it stopped, or use --workers 1"
                    ) from None
                finally:
                    for future in futures:
                        future.cancel()
        flush()


def read_whole(stem: Path) -> torch.Tensor:
    """The finished cache file read into one in-memory tensor."""
    shape, offset = read_header(part(stem, ".npy"))
    pixels = np.empty(shape, dtype=np.uint8)
    fd = os.open(part(stem, ".npy"), os.O_RDONLY)
    try:
        pread_into(fd, pixels, offset)
    finally:
        os.close(fd)
    return torch.from_numpy(pixels)


def load_pixels(
    table: SampleTable, size: int, workers: int | None = None, mode: str = "auto"
) -> tuple[Pixels, dict[int, str]]:
    """(uint8 [N, C, size, size] images of every row of `table` in row order, {row: reason} for
    the rows whose image could not be decoded: their pixels are zeros). File images come from
    the cache (`build_cache` makes it when needed): in memory with `mode` "memory", or when
    "auto" and the file takes at most half of `memory_budget()`; else a `PixelMap` on it."""
    if isinstance(table.images, ArrayImages):
        return resize_array(table.images.pixels, size), {}
    if len(table) == 0:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8), {}
    stem = build_cache(table, size, workers)
    marker = read_marker(stem)
    if marker is None:
        raise OSError(f"the image cache {stem}.npy changed while it was being opened")
    failures = {int(k): v for k, v in marker["failures"].items()}
    nbytes = int(np.prod(marker["shape"]))
    budget = memory_budget() if mode == "auto" else 0
    if mode == "memory" or (mode == "auto" and nbytes <= budget // 2):
        return read_whole(stem), failures
    if mode == "auto":
        print(
            f"audit: the image cache ({nbytes / 1e9:.1f} GB) is more than half of the memory "
            f"this process may take ({budget / 1e9:.1f} GB): training reads it by batch from "
            f"{part(stem, '.npy')}",
            file=sys.stderr,
        )
    return PixelMap(part(stem, ".npy")), failures
