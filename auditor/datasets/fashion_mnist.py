"""Fashion-MNIST (Xiao et al. 2017, MIT) from the IDX files of Debian's `dataset-fashion-mnist`
(`/usr/share/datasets/fashion-mnist/`), or, with a network, torchvision's download.

Registry keys: `subset: {train: N, test: M}` takes a class-stratified subset (fixed seed 0, so
the same samples every run). Sample ids: `train-00042` / `test-00042`, the row in the IDX file.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from auditor.datasets.kinds import DatasetKind, register_kind
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import ArrayImages, SampleTable, stratified_subset
from auditor.errors import UserError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), gzip-compressed or not, as a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise UserError(f"{path}: expected {int(np.prod(shape))} values, found {body.size}")
    return body.reshape(shape)


def find_file(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def missing_files(root: Path | None) -> list[str]:
    if root is None:
        return [f"{s}.gz" for pair in FILES.values() for s in pair]
    return [f"{s}.gz" for pair in FILES.values() for s in pair if find_file(root, s) is None]


def download(cache: Path) -> Path:
    """torchvision's Fashion-MNIST download (needs a network); returns the folder of raw files."""
    import torchvision

    try:
        torchvision.datasets.FashionMNIST(str(cache), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(cache), train=False, download=True)
    except Exception as err:  # noqa: BLE001 - any failure means "no network": tell the user
        raise UserError(f"downloading Fashion-MNIST failed ({err})") from None
    return cache / "FashionMNIST" / "raw"


def status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    missing = missing_files(root)
    if missing:
        return False, f"missing {len(missing)} IDX files"
    size = sum(find_file(root, s).stat().st_size for pair in FILES.values() for s in pair)
    return True, f"{size / 1e6:.1f} MB"


def subset_sizes(entry: DatasetEntry) -> dict[str, int]:
    """The `subset` key: {split: positive size} for `train` and `test` only."""
    subset = entry.options.get("subset", {})
    for split, size in subset.items():
        if split not in FILES or not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise UserError(
                f"{entry.where()}: `subset` maps train and test to positive sizes, found "
                f"{split!r}: {size!r}"
            )
    return subset


def load(entry: DatasetEntry, root: Path | None) -> SampleTable:
    subset = subset_sizes(entry)
    classes = entry.class_list()
    if len(classes) != 10:
        raise UserError(
            f"{entry.where()}: Fashion-MNIST has 10 classes, `classes` lists {len(classes)}"
        )
    if missing_files(root):
        if os.environ.get("AUDIT_DOWNLOAD") != "1":
            raise UserError(
                f"Fashion-MNIST not found in {root}. Install Debian's package "
                "(`apt-get install dataset-fashion-mnist`, files in "
                "/usr/share/datasets/fashion-mnist/), "
                f"{entry.root_hint()}, or set AUDIT_DOWNLOAD=1 to download it with torchvision"
            )
        root = download(Path.home() / ".cache" / "audit" / "downloads")
    parts = []
    for split, (images_stem, labels_stem) in FILES.items():
        images_file = find_file(root, images_stem)
        images = read_idx(images_file)
        labels = read_idx(find_file(root, labels_stem)).astype(np.int64)
        index = stratified_subset(labels, subset.get(split, len(labels)), seed=0)
        parts.append((split, images_file, images[index], labels[index], index))
    return SampleTable(
        name=entry.name,
        class_names=classes,
        sample_ids=np.concatenate([[f"{s}-{i:05d}" for i in idx] for s, _, _, _, idx in parts]),
        filepaths=np.concatenate([[f"{file}#{i}" for i in idx] for _, file, _, _, idx in parts]),
        labels=np.concatenate([lab for _, _, _, lab, _ in parts]),
        split=np.concatenate([[s] * len(idx) for s, _, _, _, idx in parts]),
        images=ArrayImages(np.concatenate([img for _, _, img, _, _ in parts])),
    )


register_kind(DatasetKind(name="fashion-mnist", load=load, status=status, options={"subset": dict}))
