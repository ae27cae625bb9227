"""Relabel CSVs read back and corrected label files written and read, on tiny tables."""

import numpy as np
import pandas as pd
import pytest

from auditor.datasets.corrected import NOT_LISTED, read_label_file, with_labels, write_label_file
from auditor.datasets.table import ArrayImages, SampleTable
from auditor.decisions import (
    Decisions,
    corrected_labels,
    keep_own_class,
    read_decisions,
    reviewed_frame,
    suspects_frame,
)
from auditor.errors import UserError

CLASSES = ["Surprise", "Fear", "Happiness"]


def table(ids=("train_00001", "train_00002", "train_00003", "test_0001")) -> SampleTable:
    n = len(ids)
    return SampleTable(
        name="t",
        class_names=CLASSES,
        sample_ids=np.array(ids),
        filepaths=np.array([f"{i}.jpg" for i in ids]),
        labels=np.array([0, 1, 2, 0][:n]),
        split=np.array([i.split("_")[0] for i in ids]),
        images=ArrayImages(np.zeros((n, 4, 4), np.uint8)),
    )


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_decisions_relabel_keep_drop_and_targets(tmp_path):
    csv = write(
        tmp_path / "d.csv",
        "\ufeffsample_id,suggested_label,suggested_name,new_name,decision\r\n"
        "a,2,Happiness,,relabel\r\n"
        "b,2,Happiness,Fear,RELABEL\r\n"
        "c,0,,,relabel\r\n"
        "d,1,Fear,,keep\r\n"
        "e,1,Fear,,drop\r\n"
        "f,1,Fear,,\r\n",
    )
    d = read_decisions(csv, list("abcdef"), CLASSES)
    assert d.relabel == {"a": 2, "b": 1, "c": 0}
    assert d.keep == {"d"} and d.drop == {"e"}
    assert d.counts() == {"relabel": 3, "keep": 1, "drop": 1}


def test_class_names_are_matched_as_in_fiftyone_exact_else_the_only_case_insensitive(tmp_path):
    csv = write(
        tmp_path / "d.csv",
        "sample_id,new_name,decision\na,fear,relabel\nb, HAPPINESS ,relabel\nc,Fear,relabel\n",
    )
    assert read_decisions(csv, list("abc"), CLASSES).relabel == {"a": 1, "b": 2, "c": 1}
    two = write(tmp_path / "two.csv", "sample_id,new_name,decision\na,bag,relabel\n")
    with pytest.raises(UserError, match="new_name 'bag' is not a class"):
        read_decisions(two, ["a"], ["Bag", "BAG", "Coat"])  # ambiguous: neither is chosen


def test_a_relabel_to_the_samples_own_class_is_a_keep():
    given = pd.Series({"a": 0, "b": 1, "c": 2})
    decisions = Decisions({"a": 0, "b": 2}, frozenset({"c"}), frozenset())
    kept, own = keep_own_class(decisions, given)
    assert own == ["a"]
    assert kept.relabel == {"b": 2} and kept.keep == {"a", "c"} and kept.drop == set()
    samples = pd.DataFrame(
        {
            "sample_id": ["a", "b"],
            "filepath": ["a.jpg", "b.jpg"],
            "given_label": [0, 1],
            "given_name": ["Surprise", "Fear"],
            "suggested_label": [0, 2],
            "suggested_confidence": [0.9, 0.8],
            "suspicion": [0.9, 0.8],
            "flag_suspicion": [True, True],
        }
    )
    # a's relabel names no class: the suggestion, which is its own class
    decided = {"a": ("relabel", None), "b": ("relabel", 0)}
    frame = reviewed_frame(samples, CLASSES, "r", decided, "s")
    assert frame["decision"].tolist() == ["keep", "relabel"]
    assert frame["new_name"].tolist() == ["Surprise", "Surprise"]


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (
            "zz,Fear,relabel\nyy,Fear,keep\n",
            ["2 rows refused", "line 2: unknown sample_id 'zz'", "line 3"],
        ),
        ("a,Angry,relabel\n", ["line 2: relabel 'a': suggested_name 'Angry' is not a class"]),
        ("a,Fear,maybe\n", ["line 2: decision 'maybe'"]),
        ("a,Fear,keep\na,Fear,drop\n", ["line 3: 'a' already decided on line 2"]),
    ],
)
def test_bad_relabel_rows_are_refused_naming_lines(tmp_path, body, needles):
    csv = write(tmp_path / "d.csv", "sample_id,suggested_name,decision\n" + body)
    with pytest.raises(UserError) as err:
        read_decisions(csv, ["a", "b"], CLASSES)
    for needle in needles:
        assert needle in str(err.value)


def test_relabel_csv_needs_its_columns(tmp_path):
    with pytest.raises(UserError, match="columns sample_id,decision"):
        read_decisions(write(tmp_path / "d.csv", "sample_id\na\n"), ["a"], CLASSES)


def test_neutralised_cells_are_read_back(tmp_path):
    csv = write(tmp_path / "d.csv", "sample_id,suggested_name,decision\n'=a,Fear,relabel\n")
    assert read_decisions(csv, ["=a"], CLASSES).relabel == {"=a": 1}


def test_corrected_labels_apply_decisions():
    given = pd.Series([0, 1, 2], index=["a", "b", "c"])
    out = corrected_labels(given, Decisions({"a": 2}, frozenset({"b"}), frozenset({"c"})))
    assert out.to_dict() == {"a": 2, "b": 1}
    assert given.to_dict() == {"a": 0, "b": 1, "c": 2}  # the input is not modified


def test_suspects_frame_flagged_or_top():
    samples = pd.DataFrame(
        {
            "sample_id": list("abc"),
            "filepath": list("abc"),
            "given_label": [0, 1, 2],
            "given_name": CLASSES,
            "suggested_label": [1, 1, 0],
            "suggested_confidence": [0.5, 0.9, 0.7],
            "suspicion": [0.2, 0.9, 0.5],
            "flag_suspicion": [False, True, False],
            "flag_x": [True, True, False],
        }
    )
    assert suspects_frame(samples, CLASSES, "r", None)["sample_id"].tolist() == ["b"]
    top = suspects_frame(samples, CLASSES, "r", 2)
    assert top["sample_id"].tolist() == ["b", "c"]
    assert top["detectors"].tolist() == ["suspicion;x", ""]


@pytest.mark.parametrize("kind", ["raf-db", "csv", "imagefolder"])
def test_label_file_round_trip(tmp_path, kind):
    t = table()
    labels = np.array([2, NOT_LISTED, 1, 0])
    path = tmp_path / "labels.out"
    assert write_label_file(path, t, labels, kind) == 3
    assert read_label_file(path, t, kind).tolist() == labels.tolist()
    if kind == "raf-db":
        assert path.read_text() == "train_00001.jpg 3\ntrain_00003.jpg 2\ntest_0001.jpg 1\n"


def test_with_labels_leaves_unlisted_training_samples_out(tmp_path):
    t = table()
    path = write(tmp_path / "l.csv", "sample_id,label\ntrain_00001,Fear\ntrain_00003,2\n")
    out, info = with_labels(t, path, "fashion-mnist")
    assert out.sample_ids.tolist() == ["train_00001", "train_00003", "test_0001"]
    assert out.labels.tolist() == [1, 2, 0] and out.true_labels is None
    assert info == {"file": str(path), "listed": 2, "changed": 1, "left_out": 1}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sample_id,label\nnope,Fear\n", "line 2 ('nope')"),
        ("sample_id,label\ntrain_00001,Angry\n", "line 2: unknown label 'Angry'"),
        ("sample_id,label\ntrain_00001,Fear\ntrain_00001,Fear\n", "line 3: 'train_00001' already"),
        ("id,label\ntrain_00001,Fear\n", "expected a header"),
        ("sample_id,label\ntest_0001,Fear\n", "lists none of the training samples"),
    ],
)
def test_bad_label_files_are_refused(tmp_path, text, needle):
    with pytest.raises(UserError, match=None) as err:
        with_labels(table(), write(tmp_path / "l.csv", text), "imagefolder")
    assert needle in str(err.value)


def test_rafdb_label_file_refuses_unknown_images(tmp_path):
    path = write(tmp_path / "l.txt", "train_00001.jpg 1\ntrain_09999.jpg 2\n")
    with pytest.raises(UserError, match=r"line 2 \('train_09999'\)"):
        read_label_file(path, table(), "raf-db")
