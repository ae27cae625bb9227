"""Dataset kinds: a kind registered from outside the package is loaded, listed and given its
corrected-label-file format; run-time inputs reach only the kinds that declare them; loaders
say where their truth comes from."""

from pathlib import Path

import numpy as np
import pytest

from auditor.datasets import dataset_status, load_dataset
from auditor.datasets.corrected import NOT_LISTED, read_label_file, write_label_file
from auditor.datasets.kinds import DatasetKind, LabelFileFormat, register_kind
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import ArrayImages, SampleTable
from auditor.errors import UserError
from auditor.synth_faces_folder import write_rafdb_layout
from tests.fer_fixtures import write_ferplus


def toy_load(entry: DatasetEntry, root: Path | None, *, seed: int) -> SampleTable:
    """Four in-memory samples; the first label is the seed's parity (so the test sees the seed)."""
    ids = np.array(["a.png", "b.png", "c.png", "d.png"])
    return SampleTable(
        name=entry.name,
        class_names=["cat", "dog"],
        sample_ids=ids,
        filepaths=ids,
        labels=np.array([seed % 2, 1, 0, 1]),
        split=np.array(["train", "train", "train", "test"]),
        images=ArrayImages(np.zeros((4, 2, 2), np.uint8)),
    )


def toy_status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    return True, "4 toys"


# What a plug-in module does: one registration line, from outside auditor.datasets.
register_kind(
    DatasetKind(
        name="toy",
        load=toy_load,
        status=toy_status,
        reads_seed=True,
        label_file=LabelFileFormat.PATH_CSV,
    )
)


def entry(kind: str, **options) -> DatasetEntry:
    return DatasetEntry(
        name="mine", kind=kind, root=None, env=None, classes=None, defaults={}, options=options
    )


def test_a_plugin_kind_is_loaded_listed_and_written(tmp_path):
    table = load_dataset(entry("toy"), seed=3)
    assert table.labels.tolist() == [1, 1, 0, 1]
    assert dataset_status(entry("toy")) == (None, True, "4 toys")
    labels = np.array([0, NOT_LISTED, 1, 0])
    path = tmp_path / "labels.csv"
    assert write_label_file(path, table, labels, "toy") == 3
    assert path.read_text().splitlines()[:2] == ["path,label,split", "a.png,cat,train"]
    assert read_label_file(path, table, "toy").tolist() == labels.tolist()


def test_noise_file_is_refused_by_kinds_that_read_none():
    with pytest.raises(
        UserError, match="--noise-file is read by the raf-db loader only, not by 'toy'"
    ):
        load_dataset(entry("toy"), noise_file="noise03.txt")


def test_unknown_kinds_are_refused_naming_the_dataset_and_the_known_kinds(tmp_path):
    with pytest.raises(
        UserError, match="dataset 'mine' has unknown kind 'nope'; known: .*raf-db.*toy"
    ):
        load_dataset(entry("nope"))
    with pytest.raises(UserError, match="unknown dataset kind 'nope'"):
        write_label_file(
            tmp_path / "x.csv", toy_load(entry("toy"), None, seed=0), np.zeros(4, int), "nope"
        )
    assert not (tmp_path / "x.csv").exists()


def test_a_kind_is_registered_once():
    with pytest.raises(ValueError, match="'raf-db' is already registered"):
        register_kind(DatasetKind(name="raf-db", load=toy_load, status=toy_status))


def test_rafdb_truth_comes_from_the_noise_file(tmp_path):
    root = write_rafdb_layout(tmp_path, n_train=7, n_test=2, noise_rates=(0.3,))
    raf = DatasetEntry("raf-db", "raf-db", None, None, ["S", "F", "D", "H", "Sa", "A", "N"], {})
    assert load_dataset(raf, root=root).truth_source is None
    noisy = load_dataset(raf, root=root, noise_file=root / "noise03.txt")
    assert noisy.truth_source == "file"
    assert noisy.select(np.array([1, 0])).truth_source == "file"
    assert "noise_type" not in noisy.extra


@pytest.mark.parametrize(
    ("protocol", "source"),
    [("majority", None), ("annotator", "ferplus-annotator"), ("fer2013", "ferplus-fer2013")],
)
def test_ferplus_truth_source_names_the_protocol(tmp_path, protocol, source):
    root = write_ferplus(tmp_path, {"Training": 30, "PrivateTest": 10})
    table = load_dataset(entry("ferplus", protocol=protocol), root=root, seed=1)
    assert table.truth_source == source
    assert set(table.extra) <= {"protocol", "dropped"}


def test_truth_and_its_source_are_set_together():
    table = toy_load(entry("toy"), None, seed=0)
    with pytest.raises(ValueError, match="true_labels and truth_source"):
        SampleTable(
            table.name,
            table.class_names,
            table.sample_ids,
            table.filepaths,
            table.labels,
            table.split,
            table.images,
            true_labels=table.labels,
        )
