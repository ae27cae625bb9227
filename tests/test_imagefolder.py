from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from auditor.datasets import load_dataset
from auditor.datasets.registry import DatasetEntry
from auditor.errors import UserError

ENTRY = DatasetEntry(
    name="imagefolder", kind="imagefolder", root=None, env=None, classes=None, defaults={}
)


def save(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def test_class_folders_with_train_and_test(tmp_path):
    for split in ("train", "test"):
        for cls, value in (("cat", 10), ("dog", 200)):
            for i in range(2):
                save(tmp_path / split / cls / f"{i}.png", value)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    table = load_dataset(ENTRY, root=tmp_path)
    assert table.class_names == ["cat", "dog"]
    assert table.sample_ids.tolist()[:2] == ["train/cat/0.png", "train/cat/1.png"]
    assert (table.split == "test").sum() == 4 and (table.split == "train").sum() == 4
    assert table.labels.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]


def test_flat_class_folders_are_all_training_data(tmp_path):
    save(tmp_path / "a" / "x.jpg", 1)
    save(tmp_path / "b" / "y.jpg", 2)
    table = load_dataset(ENTRY, root=tmp_path)
    assert set(table.split) == {"train"} and table.class_names == ["a", "b"]


def test_symlink_out_of_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside.png"
    save(outside, 5)
    root = tmp_path / "root"
    save(root / "a" / "x.png", 1)
    (root / "b").mkdir()
    (root / "b" / "evil.png").symlink_to(outside)
    with pytest.raises(UserError, match="escapes the dataset root"):
        load_dataset(ENTRY, root=root)


def test_needs_two_classes(tmp_path):
    save(tmp_path / "only" / "x.png", 1)
    with pytest.raises(UserError, match="need at least 2"):
        load_dataset(ENTRY, root=tmp_path)
