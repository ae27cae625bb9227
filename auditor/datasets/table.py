"""The SampleTable: what every loader returns, whatever the dataset's layout on disk."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auditor.errors import UserError

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # newlines, tabs, escapes: no sample name has them


@dataclass
class ArrayImages:
    """Pixels already in memory: uint8 [N, H, W] (grayscale) or [N, H, W, C]."""

    pixels: np.ndarray

    def fingerprint(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.pixels).data).hexdigest()[:16]


@dataclass
class FileImages:
    """Image files on disk, decoded once into the tensor cache (`auditor.datasets.cache`);
    `boxes` optionally crops each to a face box (x, y, width, height) first."""

    paths: list[Path]
    boxes: list[tuple[int, int, int, int] | None] | None = None

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            try:
                st = p.stat()
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:  # missing or unreadable: decoding skips and lists it
                h.update(f"{p}\0unreadable\n".encode())
        if self.boxes is not None:
            h.update(repr(self.boxes).encode())
        return h.hexdigest()[:16]


@dataclass
class SampleTable:
    """One row per sample of a dataset, both splits.

    `labels` are the labels as the dataset gives them (the given labels a model trains on);
    `true_labels` is set only when a second, trusted labelling is known (a published noise file
    replaces the given labels and the clean file becomes the truth). `truth_source` says where
    that truth comes from, for the manifest's noise type: "file" for a noise file,
    "ferplus-annotator" / "ferplus-fer2013" for FERPlus's protocols. It is set exactly when
    `true_labels` is. `extra` holds loader notes for the manifest's `dataset_notes`.
    """

    name: str
    class_names: list[str]
    sample_ids: np.ndarray  # str, unique, stable across runs
    filepaths: np.ndarray  # str, for people and reports
    labels: np.ndarray  # int64 in [0, K)
    split: np.ndarray  # "train" or "test"
    images: ArrayImages | FileImages
    true_labels: np.ndarray | None = None
    truth_source: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.sample_ids)
        for name in ("filepaths", "labels", "split"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"SampleTable.{name} has {len(getattr(self, name))} rows, not {n}")
        if len(set(self.sample_ids.tolist())) != n:
            raise ValueError("SampleTable.sample_ids are not unique")
        if (self.true_labels is None) != (self.truth_source is None):
            raise ValueError("SampleTable.true_labels and truth_source are set together")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        """Channels of the decoded images: 1 for grayscale arrays, else 3 (files decode to RGB)."""
        if isinstance(self.images, ArrayImages):
            return 1 if self.images.pixels.ndim == 3 else self.images.pixels.shape[-1]
        return 3

    def __len__(self) -> int:
        return len(self.sample_ids)

    def fingerprint(self) -> str:
        """Identifies the samples, their labels and their pixels (for the cache and the
        manifest)."""
        h = hashlib.sha256()
        h.update("\n".join(self.sample_ids.tolist()).encode())
        h.update(np.asarray(self.labels, dtype=np.int64).tobytes())
        h.update(self.images.fingerprint().encode())
        return h.hexdigest()[:16]

    def select(self, index: np.ndarray) -> SampleTable:
        """The rows at `index`, in that order."""
        images = (
            ArrayImages(self.images.pixels[index])
            if isinstance(self.images, ArrayImages)
            else FileImages(
                [self.images.paths[i] for i in index],
                None if self.images.boxes is None else [self.images.boxes[i] for i in index],
            )
        )
        return SampleTable(
            name=self.name,
            class_names=self.class_names,
            sample_ids=self.sample_ids[index],
            filepaths=self.filepaths[index],
            labels=self.labels[index],
            split=self.split[index],
            images=images,
            true_labels=None if self.true_labels is None else self.true_labels[index],
            truth_source=self.truth_source,
            extra=self.extra,
        )


def name_problem(name: str) -> str | None:
    """Why a sample name would not come back unchanged from the files a run writes and reads
    (CSV, Parquet, the relabel decisions, whose cells are stripped), or None. A path's every
    file and folder name is held to the same rule (the README promises it for file names)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"the file name {os.fsencode(name)!r} is not UTF-8"
    if CONTROL.search(name):
        return f"the name {name!r} holds a control character (a newline, a tab)"
    if name != name.strip():
        return f"the name {name!r} begins or ends with a space"
    spaced = [part for part in name.split("/") if part != part.strip()]
    if spaced:  # a file or folder of the path: ` x.png` in `cat/ x.png`
        return f"the name {name!r} holds {spaced[0]!r}, which begins or ends with a space"
    return None


def refuse_unusable(table: SampleTable, source: str) -> None:
    """Refuse, naming `source` (where the samples come from), a table a run could not use: a
    sample whose name `name_problem` refuses (rename the file), or training labels of fewer than
    two classes (a classifier, and confident learning, need two)."""
    for name in table.sample_ids.tolist():
        problem = name_problem(name)
        if problem:
            raise UserError(f"{source}: {problem}; rename it (names must survive CSV files)")
    trained = np.unique(table.labels[table.split == "train"])
    if len(trained) == 1:
        raise UserError(
            f"{source}: every training sample is labelled {table.class_names[trained[0]]!r}; "
            "a classifier needs at least two classes"
        )


def stratified_subset(labels: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """Indices of a class-stratified random subset of size about `n` (each class keeps its share),
    in their original order. Returns every index when `n >= len(labels)`."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / len(labels) * n).astype(int)
    # hand the rounding remainder to the classes with the largest fractional parts
    remainder = n - quota.sum()
    order = np.argsort(-(counts / len(labels) * n - quota), kind="stable")
    quota[order[:remainder]] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked))
