"""Property-based tests (hypothesis) of every label-file parser: on any text a parser either
returns rows that keep its promises or refuses with a UserError that names the file; it never
crashes with another exception. Valid files round-trip whatever their BOM, line endings and
blank lines."""

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from auditor.csv_cells import neutralise_cell, restore_cell
from auditor.datasets import affectnet, csv_labels, ferplus
from auditor.datasets.corrected import NOT_LISTED, read_label_file, write_label_file
from auditor.datasets.labelfile import parse_name_label, read_csv_rows
from auditor.datasets.registry import DatasetEntry, load_registry
from auditor.datasets.table import ArrayImages, SampleTable
from auditor.decisions import read_decisions
from auditor.errors import UserError

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CLASSES = ["Surprise", "Fear", "Happiness"]
# text that looks like label files: separators, digits, names, quotes, BOMs, odd line ends
TOKENS = st.sampled_from(
    [
        "train_00001.jpg",
        "test_0001.jpg",
        "1",
        "3",
        "9",
        "-1",
        "x",
        " ",
        ",",
        "\t",
        '"',
        "\n",
        "\r\n",
        "\r",
        "\ufeff",
        "\x00",
        "Fear",
        "=1",
        "path",
        "label",
        "sample_id",
        "decision",
        "keep",
        "drop",
        "relabel",
        "imgs/0.png",
        "../a.png",
        "/etc/passwd",
        "é",
        "99999999999",
    ]
)
TEXT = st.one_of(st.text(max_size=200), st.lists(TOKENS, max_size=60).map("".join))


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def refuses_or(call):
    """The parser's result, or None when it refused with a UserError (any other error fails)."""
    try:
        return call()
    except UserError as err:
        assert str(err)
        return None


def line_endings(lines: list[str], ending: str, bom: bool, blank: bool) -> str:
    body = ending.join(line + (ending if blank else "") for line in lines) + ending
    return ("\ufeff" if bom else "") + body


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("props")
    for i in range(3):
        (root / "imgs").mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / "imgs" / f"{i}.png")
    return root


@SETTINGS
@given(text=TEXT)
def test_name_label_lists_parse_or_refuse(folder, text):
    rows = refuses_or(lambda: parse_name_label(write(folder / "list.txt", text), num_classes=7))
    if rows is not None:
        names = [n for n, _ in rows]
        assert len(set(names)) == len(names) and all(0 <= y < 7 for _, y in rows)
        assert all(n and not any(c.isspace() for c in n) for n in names)


@SETTINGS
@given(
    labels=st.lists(st.integers(0, 6), min_size=1, max_size=30),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    blank=st.booleans(),
)
def test_name_label_lists_round_trip(folder, labels, ending, bom, blank):
    lines = [f"train_{i:05d}.jpg {y + 1}" for i, y in enumerate(labels)]
    path = write(folder / "list.txt", line_endings(lines, ending, bom, blank))
    assert parse_name_label(path, num_classes=7) == [
        (f"train_{i:05d}.jpg", y) for i, y in enumerate(labels)
    ]


@SETTINGS
@given(text=TEXT)
def test_csv_tables_parse_or_refuse(folder, text):
    out = refuses_or(lambda: read_csv_rows(write(folder / "t.csv", text), ["path", "label"]))
    if out is not None:
        frame, lines = out
        assert len(frame) == len(lines) and {"path", "label"} <= set(frame.columns)
        assert list(lines) == sorted(set(lines))


@SETTINGS
@given(
    rows=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=20),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
)
def test_csv_tables_round_trip(folder, rows, ending, bom):
    rows = [r for r in rows if any(c.strip() for c in r) and "\x00" not in "".join(r)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=ending, quoting=csv.QUOTE_ALL)
    writer.writerow(["path", "label"])
    writer.writerows(rows)
    path = write(folder / "t.csv", ("\ufeff" if bom else "") + buffer.getvalue())
    frame, _ = read_csv_rows(path, ["path", "label"])
    assert [tuple(r) for r in frame.to_numpy().tolist()] == rows


@SETTINGS
@given(text=TEXT, classes=st.sampled_from([None, ["cat", "dog"]]))
def test_csv_dataset_loader_parses_or_refuses(folder, text, classes):
    write(folder / "labels.csv", text)
    entry = DatasetEntry("mine", "csv", str(folder), None, classes, {})
    table = refuses_or(lambda: csv_labels.load(entry, folder))
    if table is not None:
        assert set(table.split) <= {"train", "test"}
        assert all(0 <= y < table.num_classes for y in table.labels)
        assert all(Path(p).resolve().is_relative_to(folder.resolve()) for p in table.filepaths)


def tiny_table() -> SampleTable:
    ids = np.array(["train_00001", "train_00002", "test_0001"])
    return SampleTable(
        "t",
        CLASSES,
        ids,
        ids,
        np.array([0, 1, 2]),
        np.array(["train", "train", "test"]),
        ArrayImages(np.zeros((3, 2, 2), np.uint8)),
    )


@SETTINGS
@given(text=TEXT, kind=st.sampled_from(["raf-db", "csv", "imagefolder"]))
def test_corrected_label_files_parse_or_refuse(folder, text, kind):
    table = tiny_table()
    labels = refuses_or(lambda: read_label_file(write(folder / "l.txt", text), table, kind))
    if labels is not None:
        assert labels.shape == (3,) and all(y == NOT_LISTED or 0 <= y < 3 for y in labels)


@SETTINGS
@given(
    labels=st.lists(st.sampled_from([NOT_LISTED, 0, 1, 2]), min_size=3, max_size=3),
    kind=st.sampled_from(["raf-db", "csv", "imagefolder"]),
)
def test_corrected_label_files_round_trip(folder, labels, kind):
    assume(any(y != NOT_LISTED for y in labels))  # an empty label file is refused
    table = tiny_table()
    write_label_file(folder / "l.out", table, np.array(labels), kind)
    assert read_label_file(folder / "l.out", table, kind).tolist() == labels


@SETTINGS
@given(text=TEXT)
def test_relabel_csvs_parse_or_refuse(folder, text):
    known = ["train_00001", "=1", "x"]
    decisions = refuses_or(lambda: read_decisions(write(folder / "r.csv", text), known, CLASSES))
    if decisions is not None:
        decided = set(decisions.relabel) | decisions.keep | decisions.drop
        assert decided <= set(known)
        assert not (decisions.keep & decisions.drop) and not (
            set(decisions.relabel) & decisions.keep
        )
        assert all(0 <= y < 3 for y in decisions.relabel.values())


@SETTINGS
@given(text=TEXT)
def test_ferplus_votes_parse_or_refuse(folder, text):
    frame = refuses_or(lambda: ferplus.read_votes(write(folder / "fer2013new.csv", text)))
    if frame is not None:
        assert frame[ferplus.VOTE_COLUMNS].to_numpy().dtype == np.int64


@SETTINGS
@given(text=TEXT)
def test_fer2013_parses_or_refuses(folder, text):
    out = refuses_or(lambda: ferplus.read_fer2013(write(folder / "fer2013.csv", text)))
    if out is not None:
        labels, pixels, usage = out
        assert len(labels) == len(pixels) == len(usage) and all(0 <= y <= 6 for y in labels)


@SETTINGS
@given(text=TEXT)
def test_affectnet_rows_parse_or_refuse(folder, text):
    (folder / affectnet.OFFICIAL["train"]).parent.mkdir(exist_ok=True)
    write(folder / affectnet.OFFICIAL["train"], text)
    rows = refuses_or(lambda: affectnet.official_rows(folder, "train"))
    if rows is not None:
        assert all(0 <= code <= 10 for _, _, code, _ in rows)


# registry-shaped YAML: keys, indents, flow collections, anchors, aliases, merge keys, repeats
YAML = st.lists(
    st.sampled_from(
        [
            "x:",
            "y:",
            "x:",
            "\n",
            "\n  ",
            "  ",
            "kind: csv",
            "kind: ",
            "root: ",
            "classes: ",
            "defaults: ",
            "label_file: ",
            "&a ",
            "*a",
            "&b ",
            "*b",
            "<<: ",
            "[",
            "]",
            "{",
            "}",
            ", ",
            "- ",
            "3",
            "null",
            "epochs: 2",
            "image-size: 1",
            "yes",
            '"q"',
            "'",
            "\t",
            "#",
        ]
    ),
    max_size=80,
).map("".join)


@SETTINGS
@given(text=st.one_of(TEXT, YAML))
def test_registry_parses_or_refuses(folder, text):
    registry = refuses_or(lambda: load_registry(write(folder / "datasets.yaml", text)))
    if registry is not None:
        assert all(isinstance(e, DatasetEntry) for e in registry.values())


@SETTINGS
@given(text=st.text(max_size=12))
def test_every_csv_cell_comes_back_exactly(text):
    """A cell a spreadsheet would run is written with a quote in front; a text that begins with
    the quote itself too, so that reading back never confuses `'=1` with `=1`."""
    written = neutralise_cell(text)
    assert not written.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert restore_cell(written) == text
