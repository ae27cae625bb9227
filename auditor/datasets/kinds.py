"""Dataset kinds: what a loader declares about itself, and the registry of kinds.

Every entry of `datasets.yaml` names a `kind`; a kind is one loader module, which declares itself
once, at its bottom, with `register_kind(DatasetKind(...))`. The package `auditor.datasets`
imports the built-in loader modules; a third-party kind registers the same way from a module of
its own, imported before a dataset of that kind is loaded. Kinds are looked up when they are
used, so a kind registered late is found.

The loader interface (what `DatasetKind.load` and `DatasetKind.status` must do):

- `load(entry, root, **inputs) -> SampleTable`: `entry` is the registry entry (its
  loader-specific keys are in `entry.options`), `root` the resolved root folder or None. `inputs`
  are the run-time inputs the kind declares, passed by keyword: `noise_file=Path | None` when
  `reads_noise_file`, `seed=int` when `reads_seed`. It returns every sample of both splits
  (`split` "train" or "test"; other values, such as FERPlus's "val", are kept in the table and
  used by no run), with stable, unique sample ids. When the labels come with a known truth it
  sets `true_labels` and `truth_source` together. It raises `UserError` (exit 2) for anything
  the user can fix: files missing (say which, and how to point at them: `entry.root_hint()`),
  malformed label files (name the file and line), images listed but missing, bad registry
  keys. It never modifies, downloads over or replaces the dataset's files.
- `options`: the registry keys of its own the loader reads from `entry.options`, with their
  types (`{"label_file": str}`); any other key in one of its entries is refused, naming the
  entry's line (`kind_for`). A kind that declares none (None) gets every key unchecked.
- `status(entry, root) -> (found, detail)`: for `audit datasets`, cheap (no image decoding):
  whether the files are there and a short detail (a size or a count when found, what is missing
  when not). It raises nothing for a missing or incomplete dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from auditor.datasets.registry import KNOWN_KEYS, TYPE_WORDS, DatasetEntry, describe
from auditor.datasets.table import SampleTable
from auditor.errors import UserError


class LabelFileFormat(Enum):
    """The format of a kind's corrected label file (`audit apply` writes it, `audit run --labels`
    reads it), chosen so the file can stand in for the dataset's own labels."""

    RAFDB_LIST = "rafdb-list"  # RAF-DB's list format: `train_00001.jpg 5` (labels 1..K)
    PATH_CSV = "path-csv"  # `path,label,split` (label names): the csv loader's own labels.csv
    SAMPLE_ID_CSV = "sample-id-csv"  # `sample_id,label,split` (label names), keyed by sample id


@dataclass(frozen=True)
class DatasetKind:
    """A dataset kind as its loader module declares it (see the module docstring for the
    interface `load` and `status` follow)."""

    name: str  # the `kind` of datasets.yaml entries
    load: Callable[..., SampleTable]  # (entry, root, **the inputs declared below)
    status: Callable[[DatasetEntry, Path | None], tuple[bool, str]]
    reads_noise_file: bool = False  # load takes `noise_file=` (--noise-file)
    reads_seed: bool = False  # load takes `seed=` (the run's --seed)
    label_file: LabelFileFormat = LabelFileFormat.SAMPLE_ID_CSV
    options: dict[str, type] | None = None  # its own registry keys and their types


KINDS: dict[str, DatasetKind] = {}


def register_kind(kind: DatasetKind) -> None:
    """Add `kind` to the registry. A name registered twice is a programming error: a plug-in
    may not silently replace a built-in kind."""
    if kind.name in KINDS:
        raise ValueError(f"dataset kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind


def find_kind(name: str, dataset: str | None = None) -> DatasetKind:
    """The registered kind called `name`. Refuses an unknown name, naming `dataset` (the
    registry entry that asked for it) when given, and the known kinds."""
    if name not in KINDS:
        who = f"dataset {dataset!r} has unknown kind" if dataset else "unknown dataset kind"
        raise UserError(f"{who} {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def kind_for(entry: DatasetEntry) -> DatasetKind:
    """The kind of `entry`, after checking the entry's loader keys against what the kind
    declares (`DatasetKind.options`): an unknown key or a value of the wrong type is refused,
    naming the entry's place in the registry."""
    kind = find_kind(entry.kind, dataset=entry.name)
    declared = kind.options
    if declared is None:
        return kind
    for key, value in entry.options.items():
        if key not in declared:
            known = ", ".join(sorted(KNOWN_KEYS | set(declared)))
            raise UserError(
                f"{entry.where()}: unknown key {key!r}; a {kind.name} entry knows {known}"
            )
        wanted = declared[key]
        if not isinstance(value, wanted) or (isinstance(value, bool) and wanted is not bool):
            raise UserError(
                f"{entry.where()}: `{key}` must be {TYPE_WORDS[wanted]}, found {describe(value)}"
            )
    return kind
