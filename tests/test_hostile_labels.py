"""Labels nobody meant (issue 32): every dataset kind reads its label cells with the one reader
(`auditor.datasets.label_cells`): class ids in ASCII digits only, one spelling per class in a
file, one image listed once however its path is written. Each case is refused naming the line(s)
and leaves the dataset as it was; the loaders are the CLI's own (`load_dataset`), run in-process,
and one case goes through the real CLI to hold the exit 2 and the single sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from fer_fixtures import write_affectnet_official, write_affectnet_variant, write_ferplus
from hostile import QUICK, digest, images, refused

from auditor.datasets import load_dataset
from auditor.datasets.corrected import with_labels
from auditor.datasets.label_cells import LabelReader, looks_numeric
from auditor.datasets.registry import DatasetEntry
from auditor.errors import UserError
from auditor.synth_faces_folder import write_rafdb_layout

RAF_LIST = "EmoLabel/list_patition_label.txt"
RAF_CLASSES = ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"]


def entry(kind: str, classes: list[str] | None = None) -> DatasetEntry:
    return DatasetEntry(name=kind, kind=kind, root=None, env=None, classes=classes, defaults={})


def csv_root(base: Path, rows: list[str]) -> Path:
    """A csv dataset under base: imgs/0.png .. imgs/5.png and a labels.csv of `rows`."""
    images(base, 6)
    (base / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return base


GOOD = ["imgs/0.png,0", "imgs/1.png,1", "imgs/2.png,0", "imgs/3.png,1"]


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        (  # `1` and `1.0` for one class: two classes before
            [*GOOD, "imgs/4.png,1.0"],
            ["line 6: label '1.0' is not written in plain ASCII digits"],
        ),
        ([*GOOD, "imgs/4.png,-1"], ["line 6: label '-1' is not written in plain ASCII digits"]),
        ([*GOOD, "imgs/4.png,+1"], ["line 6: label '+1' is not written in plain ASCII digits"]),
        ([*GOOD, "imgs/4.png,\u0661"], ["line 6: label '\u0661' is not written in plain"]),
        ([*GOOD, "imgs/4.png,01"], ["line 6: label '01' names the same class as '1' on line 3"]),
        (  # one image twice with two labels: trained as two samples before
            [*GOOD, "./imgs/0.png,1"],
            ["line 6: './imgs/0.png' is listed twice, also as 'imgs/0.png' on line 2"],
        ),
        ([*GOOD, "imgs//1.png,1"], ["line 6: 'imgs//1.png' is listed twice", "on line 3"]),
        ([*GOOD, "imgs/x/../2.png,0"], ["line 6: 'imgs/x/../2.png' is listed twice"]),
    ],
)
def test_csv_label_cells_nobody_meant_are_refused(tmp_path, rows, needles):
    root = csv_root(tmp_path, rows)
    before = digest(root)
    with pytest.raises(UserError) as err:
        load_dataset(entry("csv"), root=root)
    assert str(err.value).startswith(f"{root / 'labels.csv'}, line 6: ")
    assert all(needle in str(err.value) for needle in needles), str(err.value)
    assert digest(root) == before


def test_csv_named_classes_may_not_also_be_written_as_ids(tmp_path):
    root = csv_root(tmp_path, ["imgs/0.png,cat", "imgs/1.png,dog", "imgs/2.png,0"])
    with pytest.raises(
        UserError, match="line 4: label '0' names the same class as 'cat' on line 2"
    ):
        load_dataset(entry("csv", ["cat", "dog"]), root=root)
    (root / "labels.csv").write_text("path,label\nimgs/0.png,0\nimgs/1.png,1\nimgs/2.png,1\n")
    assert load_dataset(entry("csv", ["cat", "dog"]), root=root).labels.tolist() == [0, 1, 1]


@pytest.fixture(scope="module")
def rafdb(tmp_path_factory) -> Path:
    return write_rafdb_layout(tmp_path_factory.mktemp("raf"), n_train=14, n_test=7)


@pytest.mark.parametrize(
    ("label", "needle"),
    [
        ("+3", "label '+3' is not written in plain ASCII digits (class ids are 1..7)"),
        ("0_3", "label '0_3' is not written in plain ASCII digits"),
        ("\u0663", "label '\u0663' is not written in plain ASCII digits"),
        ("3.0", "label '3.0' is not written in plain ASCII digits"),
        ("\u00b3", "label '\u00b3' is not an integer"),
        ("9" * 40, "label of 40 digits is outside 1..7"),
    ],
)
def test_rafdb_labels_int_would_read_as_3_are_refused(tmp_path, rafdb, label, needle):
    root = Path(shutil.copytree(rafdb, tmp_path / "raf"))
    lines = (root / RAF_LIST).read_text().splitlines()
    (root / RAF_LIST).write_text("\n".join([*lines, f"train_00099.jpg {label}"]) + "\n")
    before = digest(root)
    with pytest.raises(UserError) as err:
        load_dataset(entry("raf-db", RAF_CLASSES), root=root)
    assert f"line {len(lines) + 1}: {needle}" in str(err.value), str(err.value)
    assert digest(root) == before


def test_rafdb_one_class_spelt_two_ways_names_both_lines(tmp_path, rafdb):
    path = tmp_path / "noise.txt"
    path.write_text("train_00001.jpg 3\ntrain_00002.jpg 5\ntrain_00003.jpg 03\n")
    with pytest.raises(UserError, match="line 3: label '03' names the same class as '3' on line 1"):
        load_dataset(entry("raf-db", RAF_CLASSES), root=rafdb, noise_file=path)


def test_an_image_folder_name_beginning_with_a_space_is_refused(tmp_path):
    for name in ("cat", "dog"):
        images(tmp_path / name, 2)
    (tmp_path / "cat" / "imgs" / "0.png").rename(tmp_path / "cat" / "imgs" / " 0.png")
    with pytest.raises(UserError, match=r"holds ' 0\.png', which begins or ends with a space"):
        load_dataset(entry("imagefolder"), root=tmp_path)


def ferplus_emotion(root: Path, cell: str) -> None:
    path = root / "fer2013.csv"
    lines = path.read_text().splitlines()
    lines[2] = cell + lines[2][lines[2].index(",") :]
    path.write_text("\n".join(lines) + "\n")


def affectnet_official_expression(root: Path, cell: str) -> None:
    path = root / "Manually_Annotated_file_lists" / "training.csv"
    lines = path.read_text().splitlines()
    fields = lines[2].rsplit(",", 3)  # ..., expression, valence, arousal
    lines[2] = ",".join([fields[0], cell, *fields[2:]])
    path.write_text("\n".join(lines) + "\n")


def affectnet_official_twice(root: Path, cell: str) -> None:
    path = root / "Manually_Annotated_file_lists" / "training.csv"
    lines = path.read_text().splitlines()
    lines.append(lines[1].replace("/", cell, 1))
    path.write_text("\n".join(lines) + "\n")


def affectnet_variant_expression(root: Path, cell: str) -> None:
    np.save(root / "train_set" / "annotations" / "1_exp.npy", np.array(cell))


def ferplus_votes(root: Path, cell: str) -> None:
    path = root / "fer2013new.csv"
    lines = path.read_text().splitlines()
    fields = lines[2].split(",")
    fields[2] = cell
    lines[2] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")


def ferplus(root: Path) -> Path:
    return write_ferplus(root, {"Training": 6, "PrivateTest": 3})


def affectnet(root: Path) -> Path:
    return write_affectnet_official(root, {"train": [1, 2, 3], "test": [1, 2]}, size=24)


def affectnet_variant(root: Path) -> Path:
    return write_affectnet_variant(root, {"train": [1, 2, 3], "test": [1, 2]})


@pytest.mark.parametrize(
    ("kind", "layout", "damage", "cell", "needle"),
    [
        ("ferplus", ferplus, ferplus_emotion, "+3", "line 3: label '+3' is not written in plain"),
        ("ferplus", ferplus, ferplus_emotion, "\u0663", "line 3: label '\u0663' is not written"),
        ("ferplus", ferplus, ferplus_votes, "\u0663", "line 3: neutral '\u0663' is not an int"),
        ("affectnet", affectnet, affectnet_official_expression, "0_2", "line 3: label '0_2'"),
        ("affectnet", affectnet, affectnet_official_twice, "/./", "line 5: '1/./train_0000.jpg'"),
        ("affectnet", affectnet_variant, affectnet_variant_expression, "+2", "1_exp.npy: label"),
    ],
)
def test_fer_kinds_read_labels_with_the_one_reader(tmp_path, kind, layout, damage, cell, needle):
    root = layout(tmp_path / kind)
    damage(root, cell)
    with pytest.raises(UserError) as err:
        load_dataset(entry(kind), root=root)
    assert needle in str(err.value), str(err.value)


def test_a_corrected_label_file_is_read_by_the_same_reader(tmp_path):
    root = csv_root(tmp_path / "data", GOOD)
    table = load_dataset(entry("csv", ["cat", "dog"]), root=root)
    path = tmp_path / "fixed.csv"
    for cells, needle in [
        (["cat", "1.0"], "line 3: label '1.0' is not written in plain ASCII digits"),
        (["dog", "1"], "line 3: label '1' names the same class as 'dog' on line 2"),
    ]:
        rows = [f"imgs/{i}.png,{cell}" for i, cell in enumerate(cells)]
        path.write_text("path,label\n" + "\n".join(rows) + "\n")
        with pytest.raises(UserError, match=needle):
            with_labels(table, path, "csv")


@pytest.mark.parametrize(
    ("text", "numeric"),
    [
        ("1", False),
        ("cat", False),
        ("1.0", True),
        ("-1", True),
        ("+3", True),
        ("0_3", True),
        ("\u0663", True),
        ("1e0", True),
        ("\u00b2", False),
        ("nan", False),
        ("T-800", False),
    ],
)
def test_numbers_not_in_plain_digits_are_told_apart_from_names(text, numeric):
    assert looks_numeric(text) is numeric


def test_each_distinct_cell_is_read_once_at_its_first_line():
    reader = LabelReader("f", 3, names=["a", "b", "c"])
    labels = reader.read_column(["b", "a", "b", "2", "a"], [2, 3, 4, 5, 6])
    assert labels.tolist() == [1, 0, 1, 2, 0]
    with pytest.raises(UserError, match="f, line 4: label '1' names the same class as 'b' on"):
        LabelReader("f", 3, names=["a", "b", "c"]).read_column(["b", "a", "1"], [2, 3, 4])


def test_the_cli_refuses_labels_nobody_meant_with_exit_2_and_one_sentence(tmp_path):
    """The real `audit run` on `1` and `1.0` for one class (every loader above raises the same
    `UserError`, which the CLI turns into this): exit 2, one line on stderr naming the file and
    line, no run folder, the dataset byte-identical."""
    root = csv_root(tmp_path / "data", [*GOOD, "imgs/4.png,1.0", "imgs/5.png,0"])
    (tmp_path / "datasets.yaml").write_text(f"mine:\n  kind: csv\n  root: {root}\n")
    before, out = digest(root), tmp_path / "out"
    env = {"AUDIT_DATASETS": str(tmp_path / "datasets.yaml")}
    result = run_cli("run", "mine", *QUICK, "--out", str(out), env=env)
    refused(result, f"{root / 'labels.csv'}, line 6: label '1.0' is not written", out=out)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert digest(root) == before
