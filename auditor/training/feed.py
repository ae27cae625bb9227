"""Training batches of images, gathered by index where the step needs them.

The uint8 images of a training (`Pixels`) are in one of three places (`place_pixels`): on the
GPU (gathered there), in host memory (gathered on the host; on CUDA pinned and copied without
waiting), or in the cache file (a `PixelMap`: each batch read from the file, its rows in file
order). From a file the next batch is read in a background thread while the current one trains
(pinned when it goes to a GPU), so the step waits for the disk only when the disk, or the page
cache, is slower than the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from auditor.datasets.pixel_map import PixelMap, Pixels


def cache_on_device(nbytes: int, free_bytes: int) -> bool:
    """Keep the uint8 image cache on the GPU when it takes at most half its free memory; the
    rest is left to the model, its activations and the optimiser."""
    return nbytes <= free_bytes // 2


def place_pixels(pixels: Pixels, device: str) -> Pixels:
    """The uint8 training images where the step gathers its batches from: on the CPU as they
    are; on CUDA on the device when they fit (`cache_on_device`; a map is read into it block
    by block), otherwise in pinned host memory, or left in the file for a map."""
    if torch.device(device).type != "cuda":
        return pixels
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    if cache_on_device(len(pixels) * pixels.shape[1:].numel(), free):
        if isinstance(pixels, torch.Tensor):
            return pixels.to(device)
        placed = torch.empty(pixels.shape, dtype=torch.uint8, device=device)
        for start in range(0, len(pixels), 4096):
            placed[start : start + 4096] = pixels[start : start + 4096].to(device)
        return placed
    return pixels if isinstance(pixels, PixelMap) else pixels.pin_memory()


def batches(
    pixels: Pixels, host_rows: Sequence[torch.Tensor], device_rows: Sequence[torch.Tensor]
) -> Iterator[torch.Tensor]:
    """uint8 [B, C, H, W] images of each batch of rows, in order, on the devices of
    `device_rows` (`host_rows` are the same rows on the CPU)."""
    if isinstance(pixels, torch.Tensor):
        for host, rows in zip(host_rows, device_rows, strict=True):
            if pixels.device == rows.device:
                yield pixels[rows]
            else:  # pinned host cache: gather on the host, copy without waiting
                yield pixels[host].pin_memory().to(rows.device, non_blocking=True)
        return

    def read(rows: torch.Tensor, device: torch.device) -> torch.Tensor:
        raw = pixels[rows]
        return raw.pin_memory() if device.type == "cuda" else raw

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-read") as reader:
        targets = [rows.device for rows in device_rows]
        ahead = reader.submit(read, host_rows[0], targets[0]) if host_rows else None
        for k, target in enumerate(targets):
            raw = ahead.result()
            if k + 1 < len(targets):
                ahead = reader.submit(read, host_rows[k + 1], targets[k + 1])
            yield raw.to(target, non_blocking=True)
