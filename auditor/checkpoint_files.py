"""What a checkpoint file must be, checked alike for a user's `--weights` (`methods.weights`) and
a run's own checkpoints (`auditor.damage`):

- before `torch.load` reads it, its zip entries declare no more bytes than `torch.save`, which
  stores tensors uncompressed, could have written into it (`declared_size_problem`): a 4 MB
  file asking for 4 GiB is refused from its zip directory, never inflated;
- once loaded (memory-mapped where the caller can), every tensor in it is dense, strided, on a
  real device, real-valued and holds each of its values once (`tensor_problem`): a sparse,
  meta, quantized or complex tensor, or a stride-0 view presenting one stored value as 10^12
  elements, is what no `state_dict()` saves, and each would fail (or fill memory) later.

Each check returns what is wrong as a phrase (`declares ...`, `is ...`), or None; the callers
make it their own refusal.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

SLACK = 2**20  # bytes a zip's own headers may add beyond twice the file's size


def declared_size_problem(path: Path) -> str | None:
    """What is wrong with the sizes the zip archive at `path` declares, or None (also for a file
    that is not a zip archive: the caller says what that means)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as err:
        return f"is not an archive torch.save wrote ({err})"
    held = Path(path).stat().st_size
    if declared > 2 * held + SLACK:
        return (
            f"declares {declared / 1e9:.2f} GB of data in its {held / 1e6:.1f} MB; torch.save "
            "never compresses, so torch.save did not write it"
        )
    return None


def tensor_problem(tensor: torch.Tensor) -> str | None:
    """Why `tensor` is not one a `state_dict()` saves and a model can load, or None."""
    if tensor.layout != torch.strided:
        return f"is a {str(tensor.layout).removeprefix('torch.')} tensor, not a dense one"
    if tensor.is_meta:
        return "is a meta tensor (it holds no values)"
    if tensor.is_quantized:
        return f"is a quantized tensor ({tensor.dtype})"
    if tensor.is_complex():
        return f"is {str(tensor.dtype).removeprefix('torch.')}, not real-valued"
    stored = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
    if tensor.numel() > stored:
        return f"has {tensor.numel()} elements over a storage of {stored} (a stride-0 view)"
    return None


def tensors_in(value: object, where: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(where, tensor) for every tensor inside `value`, through dicts, lists and tuples; a
    container met twice (one that contains itself) is walked once."""
    seen: set[int] = set()
    stack = [(where, value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, torch.Tensor):
            yield at, item
        elif isinstance(item, dict | list | tuple) and id(item) not in seen:
            seen.add(id(item))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            inside = [(f"{at}.{key}" if at else str(key), inner) for key, inner in pairs]
            stack.extend(reversed(inside))  # walked in the container's order


def first_tensor_problem(value: object) -> str | None:
    """'has tensor `where` that <problem>' for the first tensor in `value` that
    `tensor_problem` refuses, or None."""
    for where, tensor in tensors_in(value):
        problem = tensor_problem(tensor)
        if problem:
            return f"has tensor `{where}` that {problem}"
    return None
