from pathlib import Path

import numpy as np
from PIL import Image

from auditor.datasets import load_dataset
from auditor.datasets.image_size import own_image_size, sample_rows
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import ArrayImages, FileImages, SampleTable

ENTRY = DatasetEntry(
    name="imagefolder", kind="imagefolder", root=None, env=None, classes=None, defaults={}
)


def save(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((height, width), np.uint8)).save(path)


def test_small_images_give_their_largest_side(tmp_path):
    for i in range(3):
        save(tmp_path / "a" / f"{i}.png", 20, 28)
        save(tmp_path / "b" / f"{i}.png", 28, 28)
    assert own_image_size(load_dataset(ENTRY, root=tmp_path)) == 28


def test_larger_images_give_their_size(tmp_path):
    save(tmp_path / "a" / "x.png", 300, 200)
    save(tmp_path / "b" / "y.jpg", 150, 256)
    assert own_image_size(load_dataset(ENTRY, root=tmp_path)) == 300


def two_rows(filepaths: list[str], images) -> SampleTable:
    """A two-sample training table of classes a and b over `images`."""
    return SampleTable(
        name="t",
        class_names=["a", "b"],
        sample_ids=np.array(["0", "1"]),
        filepaths=np.array(filepaths),
        labels=np.array([0, 1]),
        split=np.array(["train", "train"]),
        images=images,
    )


def test_arrays_in_memory_have_no_files():
    table = two_rows(["train.idx#0", "train.idx#1"], ArrayImages(np.zeros((2, 28, 28), np.uint8)))
    assert own_image_size(table) is None


def test_unreadable_files_are_skipped(tmp_path):
    save(tmp_path / "a" / "x.png", 28, 20)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "corrupt.png").write_bytes(b"not an image at all" * 100)
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    table = load_dataset(ENTRY, root=tmp_path)
    assert own_image_size(table) == 28
    assert own_image_size(table.select(np.array([1, 2]))) is None


def test_face_boxes_give_the_crop_size(tmp_path):
    save(tmp_path / "face.png", 400, 300)
    boxes = [(10, 10, 90, 120), (0, 0, 100, 100)]
    table = two_rows(["face.png", "face.png"], FileImages([tmp_path / "face.png"] * 2, boxes))
    assert own_image_size(table) == 120


def test_the_sample_is_seeded_bounded_and_without_repeats():
    rows = sample_rows(300_000, 256, seed=0)
    assert len(set(rows.tolist())) == 256 and rows.max() < 300_000
    assert (rows == sample_rows(300_000, 256, seed=0)).all()
    assert (sample_rows(5, 256, seed=0) == np.arange(5)).all()


def test_only_the_sample_is_opened(tmp_path):
    save(tmp_path / "small.png", 16, 16)
    save(tmp_path / "large.png", 64, 64)
    paths = [tmp_path / "small.png"] * 999 + [tmp_path / "large.png"]
    table = SampleTable(
        name="many",
        class_names=["a", "b"],
        sample_ids=np.array([str(i) for i in range(1000)]),
        filepaths=np.array([p.name for p in paths]),
        labels=np.arange(1000) % 2,
        split=np.array(["train"] * 1000),
        images=FileImages(paths),
    )
    large_sampled = 999 in sample_rows(1000, 10, seed=3)
    assert own_image_size(table, sample=10, seed=3) == (64 if large_sampled else 16)
    assert own_image_size(table, sample=1000) == 64
