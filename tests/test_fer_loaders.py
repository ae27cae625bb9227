"""FERPlus, AffectNet and CSV loaders on fixtures in their exact layouts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor.datasets import load_dataset
from auditor.datasets.ferplus import VOTE_COLUMNS, annotator_votes, plurality_labels, read_votes
from auditor.datasets.registry import DatasetEntry
from auditor.errors import UserError
from tests.fer_fixtures import (
    VOTES,
    save_face,
    write_affectnet_official,
    write_affectnet_variant,
    write_ferplus,
)


def entry(kind: str, **options) -> DatasetEntry:
    return DatasetEntry(
        name=kind, kind=kind, root=None, env=None, classes=None, defaults={}, options=options
    )


def votes(*rows):
    return np.array(rows, dtype=np.int64)


def test_plurality_rule_on_hand_made_rows():
    #        neu hap sur sad ang dis fea con unk NF
    rows = votes(
        [6, 2, 0, 0, 0, 0, 0, 0, 2, 0],  # neutral wins
        [4, 4, 0, 0, 0, 0, 0, 0, 2, 0],  # tie -> dropped
        [1, 1, 0, 0, 0, 0, 0, 0, 5, 3],  # unknown wins -> dropped
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # NF -> dropped
        [2, 0, 0, 0, 0, 0, 0, 6, 2, 0],  # contempt: kept with 8 classes, dropped with 7
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # no votes -> dropped
    )
    eight = plurality_labels(rows, 8)
    assert eight.plurality.tolist() == [0, -1, -1, -1, 7, -1]
    assert eight.dropped == {"tie": 1, "unknown_or_NF": 2, "contempt": 0, "no_votes": 1}
    seven = plurality_labels(rows, 7)
    assert seven.plurality.tolist() == [0, -1, -1, -1, -1, -1] and seven.dropped["contempt"] == 1


def test_annotator_votes_follow_the_counts():
    rows = np.tile(
        votes([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]), (2000, 1)
    )
    drawn = annotator_votes(rows, 8, seed=0)
    assert (drawn[::2] == 0).all()
    assert 0.45 < (drawn[1::2] == 1).mean() < 0.55
    assert np.array_equal(drawn, annotator_votes(rows, 8, seed=0))


def test_real_votes_single_annotator_disagreement_is_about_21_percent():
    frame = read_votes(VOTES)
    v = frame[VOTE_COLUMNS].to_numpy()
    plural = plurality_labels(v, 8)
    drawn = annotator_votes(v, 8, seed=0)
    kept = plural.keep & (drawn >= 0)
    rate = (drawn[kept] != plural.plurality[kept]).mean()
    assert 0.19 < rate < 0.23, rate
    assert len(frame) == 35887


@pytest.fixture(scope="module")
def ferplus_root(tmp_path_factory) -> Path:
    return write_ferplus(
        tmp_path_factory.mktemp("FERPlus"), {"Training": 120, "PublicTest": 20, "PrivateTest": 30}
    )


@pytest.mark.parametrize("protocol", ["majority", "annotator", "fer2013"])
def test_ferplus_protocols(ferplus_root, protocol):
    table = load_dataset(
        entry("ferplus", protocol=protocol, classes_count=8), root=ferplus_root, seed=1
    )
    assert set(table.split) <= {"train", "val", "test"} and (table.split == "test").sum() > 0
    assert table.images.pixels.shape[1:] == (48, 48)
    if protocol == "majority":
        assert table.true_labels is None
    else:
        test = table.split == "test"
        assert np.array_equal(table.labels[test], table.true_labels[test])  # test stays clean
        assert (table.labels[~test] != table.true_labels[~test]).mean() > 0.05  # real noise


def test_ferplus_fer2013_mapping(ferplus_root):
    table = load_dataset(entry("ferplus", protocol="fer2013", classes_count=8), root=ferplus_root)
    fer = pd.read_csv(ferplus_root / "fer2013.csv")
    rows = np.array([int(s.split("-")[1]) for s in table.sample_ids])
    train = table.split == "train"
    mapping = np.array([4, 5, 6, 1, 3, 2, 0])  # Angry->anger ... Neutral->neutral
    assert np.array_equal(table.labels[train], mapping[fer.emotion.to_numpy()[rows[train]]])


def test_ferplus_row_mismatch_and_missing(ferplus_root, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "fer2013new.csv").write_text((ferplus_root / "fer2013new.csv").read_text())
    pd.read_csv(ferplus_root / "fer2013.csv").head(5).to_csv(bad / "fer2013.csv", index=False)
    with pytest.raises(UserError, match="must match row for row"):
        load_dataset(entry("ferplus"), root=bad)
    with pytest.raises(UserError, match="fer2013new.csv"):
        load_dataset(entry("ferplus"), root=tmp_path / "none")


CODES = {"train": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3], "test": [0, 1, 7, 9, 6]}


@pytest.mark.parametrize("writer", [write_affectnet_official, write_affectnet_variant])
def test_affectnet_layouts_drop_non_emotions(tmp_path, writer):
    root = writer(tmp_path / "AffectNet", CODES)
    seven = load_dataset(entry("affectnet", classes_count=7), root=root)
    assert seven.class_names[-1] == "Anger" and seven.labels.max() <= 6
    assert seven.extra["dropped"] == {"contempt": 2, "none": 1, "uncertain": 2, "no_face": 1}
    assert (seven.split == "train").sum() == 10 and (seven.split == "test").sum() == 3
    eight = load_dataset(entry("affectnet", classes_count=8), root=root)
    assert eight.labels.max() == 7 and (eight.split == "train").sum() == 11


def test_affectnet_official_crops_the_face_box(tmp_path):
    root = write_affectnet_official(tmp_path / "A", {"train": [1, 2], "test": [3]})
    table = load_dataset(entry("affectnet"), root=root)
    assert table.images.boxes[0] == (8, 8, 64, 64)
    # the decoded pixels are the 64 x 64 face box of the 80 x 80 file, not the whole image
    from PIL import Image

    from auditor.datasets.cache import load_pixels

    pixels, failures = load_pixels(table, 64)
    assert failures == {}
    with Image.open(table.images.paths[0]) as img:
        whole = img.convert("RGB")
    face = np.asarray(whole.crop((8, 8, 72, 72))).transpose(2, 0, 1)
    assert np.array_equal(pixels[0].numpy(), face)
    assert not np.array_equal(face, np.asarray(whole.resize((64, 64))).transpose(2, 0, 1))


def write_csv_dataset(root: Path, labels: list[str], splits: list[str] | None = None) -> Path:
    for i in range(len(labels)):
        save_face(root / "imgs" / f"{i}.png", i % 7, seed=i, size=32)
    frame = pd.DataFrame({"path": [f"imgs/{i}.png" for i in range(len(labels))], "label": labels})
    if splits:
        frame["split"] = splits
    frame.to_csv(root / "labels.csv", index=False)
    return root


def test_csv_names_ids_and_splits(tmp_path):
    root = write_csv_dataset(
        tmp_path / "a", ["cat", "dog", "cat", "bird"], ["train", "train", "val", "test"]
    )
    table = load_dataset(entry("csv"), root=root)
    assert table.class_names == ["bird", "cat", "dog"] and table.labels.tolist() == [1, 2, 1, 0]
    assert table.split.tolist() == ["train", "train", "test", "test"]
    ids = load_dataset(entry("csv"), root=write_csv_dataset(tmp_path / "b", ["0", "2", "1"]))
    assert ids.class_names == ["0", "1", "2"] and set(ids.split) == {"train"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("path,label\nimgs/0.png,cat\nimgs/0.png,dog\n", "line 3: 'imgs/0.png' is listed twice"),
        ("path,label\n../outside.png,cat\n", "escapes the dataset root"),
        ("path,label\n/etc/passwd,cat\n", "absolute path"),
        ("file,class\nimgs/0.png,cat\n", "path,label"),
        ("path,label\nimgs/9.png,cat\n", "missing"),
    ],
)
def test_csv_bad_rows(tmp_path, text, needle):
    root = write_csv_dataset(tmp_path / "c", ["cat"])
    (root / "labels.csv").write_text(text)
    with pytest.raises(UserError, match=needle):
        load_dataset(entry("csv"), root=root)


def test_csv_unknown_class_name_with_registry_classes(tmp_path):
    root = write_csv_dataset(tmp_path / "d", ["cat", "emu"])
    e = DatasetEntry(
        name="csv", kind="csv", root=None, env=None, classes=["cat", "dog"], defaults={}
    )
    with pytest.raises(UserError, match="line 3: unknown label 'emu'"):
        load_dataset(e, root=root)
