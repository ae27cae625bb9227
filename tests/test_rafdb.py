"""The RAF-DB label-file parser and loader on files written in RAF-DB's exact layout."""

from pathlib import Path

import numpy as np
import pytest

from auditor.datasets import load_dataset
from auditor.datasets.labelfile import parse_name_label
from auditor.datasets.registry import DatasetEntry
from auditor.errors import UserError
from auditor.synth_faces_folder import write_rafdb_layout

CLASSES = ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"]
ENTRY = DatasetEntry(
    name="raf-db", kind="raf-db", root=None, env="AUDIT_TEST_RAF_ROOT", classes=CLASSES, defaults={}
)


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "labels.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_parses_names_and_shifts_labels_to_zero_based(tmp_path):
    rows = parse_name_label(write(tmp_path, "train_00001.jpg 5\ntest_0001.jpg 1\n"), num_classes=7)
    assert rows == [("train_00001.jpg", 4), ("test_0001.jpg", 0)]


def test_tolerates_bom_crlf_and_blank_lines(tmp_path):
    text = b"\xef\xbb\xbftrain_00001.jpg 7\r\n\r\ntrain_00002.jpg 1\r\n"
    assert parse_name_label(write(tmp_path, text), num_classes=7) == [
        ("train_00001.jpg", 6),
        ("train_00002.jpg", 0),
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("train_00001.jpg 5\ntrain_00002.jpg\n", "line 2: expected 'name label'"),
        ("train_00001.jpg 8\n", "line 1: label 8 is outside 1..7"),
        ("train_00001.jpg 0\n", "line 1: label 0 is outside 1..7"),
        ("train_00001.jpg five\n", "line 1: label 'five' is not an integer"),
        (
            "train_00001.jpg 1\ntrain_00001.jpg 2\n",
            "line 2: 'train_00001.jpg' already appears on line 1",
        ),
        ("\n\n", "no label rows"),
    ],
)
def test_bad_rows_name_the_line(tmp_path, text, needle):
    with pytest.raises(UserError, match=needle):
        parse_name_label(write(tmp_path, text), num_classes=7)


@pytest.fixture(scope="module")
def rafdb_root(tmp_path_factory) -> Path:
    return write_rafdb_layout(
        tmp_path_factory.mktemp("rafdb"), n_train=21, n_test=7, noise_rates=(0.3,)
    )


def test_layout_written_like_rafdb(rafdb_root):
    assert (rafdb_root / "Image" / "aligned" / "train_00001_aligned.jpg").is_file()
    assert (rafdb_root / "Image" / "aligned" / "test_0007_aligned.jpg").is_file()
    lines = (rafdb_root / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()
    assert len(lines) == 28 and lines[0].startswith("train_00001.jpg ")


def test_loader_reads_splits_and_noise_file(rafdb_root):
    clean = load_dataset(ENTRY, root=rafdb_root)
    assert (clean.split == "train").sum() == 21 and (clean.split == "test").sum() == 7
    assert clean.sample_ids[0] == "train_00001" and clean.true_labels is None
    noisy = load_dataset(ENTRY, root=rafdb_root, noise_file=rafdb_root / "noise03.txt")
    assert np.array_equal(noisy.true_labels, clean.labels)
    test = noisy.split == "test"
    assert np.array_equal(noisy.labels[test], clean.labels[test])  # the test split stays clean
    file_labels = [
        int(line.split()[1]) - 1 for line in (rafdb_root / "noise03.txt").read_text().splitlines()
    ]
    assert noisy.labels[~test].tolist() == file_labels


def test_noise_file_must_match_the_train_rows(rafdb_root, tmp_path):
    bad = tmp_path / "noise.txt"
    bad.write_text("train_00001.jpg 1\n")
    with pytest.raises(UserError, match="must list exactly the 21 train images"):
        load_dataset(ENTRY, root=rafdb_root, noise_file=bad)


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(UserError) as err:
        load_dataset(ENTRY, root=tmp_path / "nowhere")
    message = str(err.value)
    assert "EmoLabel/list_patition_label.txt" in message
    assert "Image/aligned/train_00001_aligned.jpg" in message
    assert "--root" in message and "AUDIT_TEST_RAF_ROOT" in message


def test_missing_images_are_reported(rafdb_root, tmp_path):
    root = tmp_path / "partial"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 1\n")
    with pytest.raises(UserError, match="1 images listed .* are missing"):
        load_dataset(ENTRY, root=root)
