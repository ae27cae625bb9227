import gzip
import struct

import numpy as np
import pytest

from auditor.datasets.fashion_mnist import read_idx
from auditor.datasets.registry import load_registry
from auditor.datasets.table import stratified_subset
from auditor.errors import UserError


def test_read_idx_gz(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(
            struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 2, 3, 4) + images.tobytes()
        )
    assert np.array_equal(read_idx(path), images)


def test_read_idx_rejects_garbage(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(UserError, match="not an IDX file"):
        read_idx(path)


def test_stratified_subset_keeps_class_shares():
    labels = np.array([0] * 600 + [1] * 300 + [2] * 100)
    idx = stratified_subset(labels, 100, seed=0)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [60, 30, 10]
    assert np.array_equal(idx, stratified_subset(labels, 100, seed=0))
    assert len(stratified_subset(labels, 5000, seed=0)) == 1000


def test_registry_lists_the_required_datasets():
    registry = load_registry()
    assert {
        "demo",
        "demo-long",
        "fashion-mnist",
        "synth-faces",
        "raf-db",
        "imagefolder",
        "ferplus",
        "ferplus-annotator",
        "ferplus-fer2013",
        "affectnet",
        "affectnet8",
        "csv",
    } <= set(registry)
    assert len(registry["raf-db"].classes) == 7


def test_every_registry_entrys_defaults_are_valid_run_options():
    from auditor.config import resolve

    for name, entry in load_registry().items():
        resolve(name, {}, entry.defaults)  # raises UserError naming the bad option
    long = resolve("demo-long", {}, load_registry()["demo-long"].defaults)
    assert (long.epochs, long.batch_size, long.lr_gamma, long.noise_rate) == (60, 64, 0.98, 0.3)


def test_registry_refuses_python_tags(tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text("x: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(UserError, match="not plain YAML"):
        load_registry(path)
