"""Damaged run folders: the refusal, `this run folder is damaged: <file> <what is wrong>`
(`DamagedRunFolder`, exit 2), and the checks that find it: a file missing or not a file
(`file_problem`), a value not of the shape `audit` writes (`shape_problem`), a training's
checkpoint that cannot be read, or not as `auditor.training.checkpoint` saves it
(`load_checkpoint`).

Shared by the run folder's readers (`auditor.outputs.run_readers`, `auditor.resume`) and the
training loop (`auditor.training.checkpoint`), so it imports neither: `audit run --resume`
checks every checkpoint before it changes anything, and the loop loads each through the same check.
"""

from __future__ import annotations

import reprlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from auditor.checkpoint_files import declared_size_problem, first_tensor_problem
from auditor.errors import UserError
from auditor.options import of_type


class DamagedRunFolder(UserError):
    """A file of a run folder that is missing, unreadable or not what `audit` wrote."""

    def __init__(self, path: Path | str, what: str) -> None:
        super().__init__(f"this run folder is damaged: {path} {what}")


@dataclass(frozen=True)
class Opt:
    """In an object's shape: a key that may be absent."""

    shape: Any


@dataclass(frozen=True)
class ListOf:
    """A list of `item`s, at least one when `nonempty`."""

    item: Any
    nonempty: bool = False


@dataclass(frozen=True)
class MapOf:
    """An object (dict) with any keys, every value of shape `value`."""

    value: Any


@dataclass(frozen=True)
class OneOf:
    """One of these values."""

    values: tuple


KIND_NAMES = {
    None: "null",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "an object",
    list: "a list",
}


def shape_name(shape: Any) -> str:
    """What a value of `shape` is, in words."""
    if isinstance(shape, tuple):
        return " or ".join(shape_name(s) for s in shape)
    if isinstance(shape, OneOf):
        return "one of " + ", ".join(map(repr, shape.values))
    if isinstance(shape, ListOf):
        return "a non-empty list" if shape.nonempty else "a list"
    if isinstance(shape, dict | MapOf):
        return "an object"
    return KIND_NAMES.get(shape, f"a {getattr(shape, '__name__', shape)}")


def shape_problem(value: Any, shape: Any, where: str = "") -> str | None:
    """Why `value` (found at `where`: `config.seed`, `class_names[2]`; "" the whole) does not
    have `shape`, or None. A shape is a type (`int`, `float` for any number, `str`, a tensor
    class), None (null), a tuple of alternatives, `OneOf`, `ListOf`, `MapOf`, or a dict of
    the keys an object must have (`Opt` for those it may lack; others are allowed). The walk
    follows the shape, not the value, so a value that contains itself ends it."""
    subject = f"has `{where}` =" if where else "holds"
    if isinstance(shape, tuple):
        fits = any(shape_problem(value, alternative) is None for alternative in shape)
    elif isinstance(shape, OneOf):
        fits = any(type(value) is type(v) and value == v for v in shape.values)
    elif isinstance(shape, ListOf):
        if not isinstance(value, list) or (shape.nonempty and not value):
            return f"{subject} {reprlib.repr(value)}, expected {shape_name(shape)}"
        items = ((value[i], f"{where}[{i}]") for i in range(len(value)))
        return next(filter(None, (shape_problem(v, shape.item, w) for v, w in items)), None)
    elif isinstance(shape, dict | MapOf):
        if not isinstance(value, dict):
            return f"{subject} {reprlib.repr(value)}, expected an object"
        keys = shape if isinstance(shape, dict) else dict.fromkeys(value, shape.value)
        for key, inner in keys.items():
            inside = f"{where}.{key}" if where else str(key)
            if key not in value:
                if isinstance(inner, Opt):
                    continue
                return f"has no `{inside}`"
            problem = shape_problem(
                value[key], inner.shape if isinstance(inner, Opt) else inner, inside
            )
            if problem:
                return problem
        return None
    else:
        fits = value is None if shape is None else of_type(value, shape)
    return None if fits else f"{subject} {reprlib.repr(value)}, expected {shape_name(shape)}"


def file_problem(path: Path) -> str | None:
    """What is wrong with `path` as a file of a run folder: missing, or anything but a regular
    file (a folder, a FIFO that would block its reader); None when it is one."""
    if path.is_file():
        return None
    return (
        "is missing"
        if not path.exists()
        else "is a folder, not a file"
        if path.is_dir()
        else "is not a regular file"
    )


def run_file(path: Path) -> Path:
    """`path`, refused as damage when `file_problem` finds one."""
    problem = file_problem(path)
    if problem:
        raise DamagedRunFolder(path, problem)
    return path


def brief(err: BaseException) -> str:
    """The gist of a library's error for a one-sentence message: its first sentence (with the
    next line when the first ends in a colon), at most 200 characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    text = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0].split(". ")[0]
    return text if len(text) <= 200 else text[:197] + "..."


TENSORS = MapOf(torch.Tensor)
# What `auditor.training.checkpoint.save_checkpoint` writes.
CHECKPOINT = {
    "epochs_done": int,
    "model": TENSORS,
    "optimizer": {"state": dict, "param_groups": ListOf(dict)},
    "scheduler": dict,
    "augment_rng": ListOf(torch.Tensor, nonempty=True),  # by process
    "torch_rng": ListOf(torch.Tensor, nonempty=True),
    "record": TENSORS,
    "current": torch.Tensor,
    "events": (torch.Tensor, None),
    "test_accuracy": torch.Tensor,
    "seconds": float,
    "best_model": Opt((TENSORS, None)),
}


def checkpoint_damage(path: Path, what: str) -> DamagedRunFolder:
    """The refusal of the checkpoint at `path`, with the way out."""
    return DamagedRunFolder(
        f"checkpoint {path}",
        f"{what}; delete it, and resuming the run trains {path.stem} again from its first epoch",
    )


def load_checkpoint(path: Path) -> dict:
    """The checkpoint at `path`, of the shape CHECKPOINT, its declared sizes and every tensor
    checked as `--weights` are (`auditor.checkpoint_files`). Read whole, as the training reads
    it (a memory-mapped load would take a storage its pickle declares larger than its record,
    which the whole read refuses), and never more than the file holds: the zip's declared
    sizes are checked before `torch.load`, and `torch.load` refuses a record shorter than its
    storage before it allocates."""
    problem = file_problem(path)
    if problem:
        raise checkpoint_damage(path, problem)
    if not zipfile.is_zipfile(path):
        raise checkpoint_damage(
            path, "is truncated or not a file torch.save wrote (no zip archive in it)"
        )
    problem = declared_size_problem(path)  # before torch.load reads a byte of it
    if problem:
        raise checkpoint_damage(path, problem)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # whatever torch.load raises on a file torch.save did not write
        raise checkpoint_damage(path, f"cannot be read by torch.load ({brief(err)})") from None
    problem = shape_problem(state, CHECKPOINT) or first_tensor_problem(state)
    if problem:
        raise checkpoint_damage(path, f"is not a checkpoint of audit: it {problem}")
    return state


def check_checkpoints(folder: Path) -> None:
    """Refuse a run's checkpoint folder that is not a folder, or any checkpoint (`*.pt`) in it
    that `load_checkpoint` refuses, before a resumed run changes anything."""
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir():
        raise DamagedRunFolder(
            folder, "is not a folder; delete it, and resuming the run trains every method again"
        )
    for path in sorted(folder.glob("*.pt")):
        load_checkpoint(path)
