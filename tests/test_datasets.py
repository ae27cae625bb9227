import gzip
import struct
import time

import numpy as np
import pytest
from PIL import Image

from auditor.datasets import csv_labels, load_dataset, rafdb
from auditor.datasets.cache import cache_stem
from auditor.datasets.corrected import with_labels
from auditor.datasets.decode import DECODER_VERSION, decode_file
from auditor.datasets.fashion_mnist import read_idx
from auditor.datasets.registry import MAX_NODES, DatasetEntry, load_registry
from auditor.datasets.table import (
    ArrayImages,
    FileImages,
    SampleTable,
    name_problem,
    stratified_subset,
)
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


def alias_bomb(levels: int = 9) -> str:
    """An entry whose `defaults.method` expands to 9**levels strings through nested aliases."""
    lines = [
        "x:",
        "  kind: csv",
        '  l0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    lines += [f"  l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"  defaults: {{method: *a{levels - 1}}}"]) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x:\n  kind: csv\ny:\n  kind: csv\nx:\n  kind: imagefolder\n",
            "line 5: 'x' is given twice in one mapping (first on line 1)",
        ),
        ("x:\n  kind: csv\n  root: /a\n  root: /b\n", "line 4: 'root' is given twice"),
        (
            "x:\n  kind: csv\n  root: [1, 2]\n",
            "line 3: `root` of dataset 'x' must be text, found a list",
        ),
        ("x:\n  kind: 3\n", "line 2: `kind` of dataset 'x' must be text, found a number (3)"),
        ("x:\n  kind: csv\n  classes: abc\n", "line 3: `classes` of dataset 'x' must be a list"),
        ("x:\n  kind: csv\n  classes: [yes, no]\n", "class True is not text (quote it)"),
        ("x:\n  kind: csv\n  classes: [a, a]\n", "class 'a' is listed twice"),
        ("x:\n  kind: csv\n  classes: [a]\n", "a classifier needs at least 2 classes"),
        ("x:\n  kind: csv\n  defaults: 5\n", "line 3: `defaults` of dataset 'x' must be a mapping"),
        (
            "x:\n  kind: csv\n  defaults: {image-size: 3}\n",
            "key 'image-size' is not an option name (write image_size)",
        ),
        (
            "x:\n  kind: csv\n  defaults: {method: {a: 1}}\n",
            "`defaults.method` must be a value or a list",
        ),
        ("x:\n", "line 1: entry 'x' must be a mapping with a 'kind'"),
        ("../up:\n  kind: csv\n", "dataset name '../up' must be text of letters"),
        (
            "x: &a\n  kind: csv\n  loop: [*a]\n",
            "line 1: an alias refers to the value that contains it",
        ),
        (alias_bomb(), f"its aliases expand to more than {MAX_NODES:,} values"),
        ("[" * 3000 + "]" * 3000, "nested too deeply"),
        ("\x1f", "not plain YAML"),
    ],
)
def test_bad_registries_are_refused_naming_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(UserError, match=f"^{path}") as refused:
        load_registry(path)
    assert message in str(refused.value)
    assert time.perf_counter() - start < 10  # the bomb is refused before anything expands it


def test_registry_files_that_are_not_text_are_refused(tmp_path, monkeypatch):
    (tmp_path / "binary.yaml").write_bytes(b"x:\n  kind: \xd0\x00\xff\n")
    with pytest.raises(UserError, match="binary.yaml, line 2: not UTF-8"):
        load_registry(tmp_path / "binary.yaml")
    with pytest.raises(UserError, match="is a folder; it must be a YAML file"):
        load_registry(tmp_path)
    with pytest.raises(UserError, match="is not a regular file"):
        load_registry("/dev/zero")
    monkeypatch.setenv("AUDIT_DATASETS", "")  # empty: the shipped registry
    assert "demo" in load_registry()


def test_registry_anchors_and_merge_keys_are_read(tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text(
        "a:\n  kind: csv\n  defaults: &shared {epochs: 3, image_size: 16}\n"
        "b:\n  kind: csv\n  defaults: {<<: *shared, epochs: 4}\n"
    )
    registry = load_registry(path)
    assert registry["a"].defaults == {"epochs": 3, "image_size": 16}
    assert registry["b"].defaults == {"epochs": 4, "image_size": 16}
    assert registry["b"].origin == f"{path}, line 4"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("kind: csv\n  rooot: /x", "line 1 (dataset 'x'): unknown key 'rooot'; a csv entry knows"),
        (
            "kind: ferplus\n  classes_count: eight",
            "`classes_count` must be a whole number, found text",
        ),
        ("kind: ferplus\n  classes_count: 9", "`classes_count` 7 or 8"),
        ("kind: raf-db\n  label_file: [a]", "`label_file` must be text, found a list"),
        ("kind: raf-db", "a raf-db entry needs `classes`"),
        (
            "kind: fashion-mnist\n  classes: [a, b]\n  subset: {train: lots}",
            "`subset` maps train and test",
        ),
        (
            "kind: fashion-mnist\n  classes: [a, b]",
            "Fashion-MNIST has 10 classes, `classes` lists 2",
        ),
    ],
)
def test_a_kinds_own_keys_are_checked_when_it_is_used(tmp_path, body, message):
    path = tmp_path / "datasets.yaml"
    path.write_text(f"x:\n  {body}\n")
    entry = load_registry(path)["x"]
    with pytest.raises(UserError, match=f"^{path}") as refused:
        load_dataset(entry, root=tmp_path)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("imgs/a\nb.png", "control character"),
        ("a\tb.png", "control character"),
        (" a.png", "begins or ends with a space"),
        ("a.png ", "begins or ends with a space"),
        ("caf\udce9.png", "b'caf\\xe9.png' is not UTF-8"),
        ("imgs/ a.png", "' a.png', which begins or ends with a space"),
        ("cats /a.png", "'cats ', which begins or ends with a space"),
        ("imgs/a b.png", None),
        ("'=x.png", None),
        ('"q,1.png', None),
    ],
)
def test_sample_names_that_would_not_survive_a_csv_are_named(name, problem):
    assert (name_problem(name) or None) == problem or problem in name_problem(name)


def test_exif_orientation_is_applied_and_keys_the_cache(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to
    show): the decoded pixels are upright, as every viewer shows it."""
    stored = np.zeros((40, 80, 3), np.uint8)  # 80 wide, 40 high; red on the left half
    stored[:, :40] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "p.jpg", exif=exif, quality=95)
    pixels = decode_file(tmp_path / "p.jpg", 8)  # [3, 8, 8]; shown: 40 wide, 80 high
    assert pixels[0, :3].mean() > 200 and pixels[0, -3:].mean() < 60  # red on top once turned
    ids = np.array(["p"])
    table = SampleTable(
        "t",
        ["a", "b"],
        ids,
        ids,
        np.array([0]),
        np.array(["train"]),
        FileImages([tmp_path / "p.jpg"]),
    )
    assert cache_stem(table, 8).name.endswith(f"-d{DECODER_VERSION}-8")


SECRET = "root:$6$SECRETHASH:19000:0:99999:7:::"


@pytest.mark.parametrize("kind", ["csv", "raf-db"])
def test_label_files_outside_the_root_are_never_quoted(tmp_path, kind):
    """A dataset's label file linked to a file outside its root (someone's secrets) is refused
    without a word of its text; the same line inside the root is quoted."""
    (tmp_path / "secret").write_text(SECRET + "\n")
    root = tmp_path / "data"
    classes = ["a", "b"]
    entry = DatasetEntry("x", kind, str(root), None, classes, {})
    loader = csv_labels if kind == "csv" else rafdb
    label_file = (
        csv_labels.label_file(entry, root) if kind == "csv" else rafdb.paths(entry, root)[0]
    )
    label_file.parent.mkdir(parents=True)
    label_file.symlink_to(tmp_path / "secret")
    with pytest.raises(UserError, match="text not shown: the file lies outside") as refused:
        loader.load(entry, root)
    assert "SECRET" not in str(refused.value) and str(label_file) in str(refused.value)
    label_file.unlink()
    label_file.write_text(SECRET + "\n")
    with pytest.raises(UserError, match="SECRETHASH"):
        loader.load(entry, root)


def test_a_label_file_leaving_one_class_to_train_on_is_refused(tmp_path):
    ids = np.array(["a", "b", "c"])
    table = SampleTable(
        "t",
        ["cat", "dog"],
        ids,
        ids,
        np.array([0, 1, 0]),
        np.array(["train", "train", "test"]),
        ArrayImages(np.zeros((3, 2, 2), np.uint8)),
    )
    (tmp_path / "l.csv").write_text("sample_id,label\na,dog\nb,dog\n")
    with pytest.raises(UserError, match="l.csv: every training sample is labelled 'dog'"):
        with_labels(table, tmp_path / "l.csv", "imagefolder")
