"""Bad and hostile input through the real CLI: every case exits 2 with a message naming what
to fix (the line, the row, the file), leaves no run folder behind and runs nothing it was fed.
(Messy images: tests/test_bad_images.py; interruption: tests/test_interrupt.py.)"""

import os
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.hostile import QUICK, images, refused
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow


class RunsCode:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def csv_root(tmp_path) -> tuple[Path, dict]:
    """A csv dataset folder, a registry whose `mine` entry fixes the classes, and its env."""
    root = tmp_path / "data"
    images(root)
    registry = tmp_path / "datasets.yaml"
    registry.write_text(f"mine:\n  kind: csv\n  root: {root}\n  classes: [cat, dog]\n")
    return root, {"AUDIT_DATASETS": str(registry)}


GOOD = "imgs/0.png,cat\nimgs/1.png,dog\nimgs/2.png,cat\nimgs/3.png,dog\n"


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("path,label\n" + GOOD + "imgs/4.png,cow\n", ["line 6", "unknown label 'cow'"]),
        ("path,label\n" + GOOD + "imgs/5.png,7\n", ["line 6", "unknown label '7'"]),
        ("path,label\n" + GOOD + "imgs/0.png,dog\n", ["line 6", "'imgs/0.png' is listed twice"]),
        ("path,label\n" + GOOD + "imgs/4.png,cat,extra\n", ["line 6", "expected 2 fields"]),
        ("path,label\n" + GOOD + "imgs/4.png\n", ["line 6", "expected 2 fields"]),
        ("path,label\n" + GOOD + ",cat\n", ["line 6", "empty path or label"]),
        ("file,class\n" + GOOD, ["expected a header with the columns path,label"]),
        ("path,label\n" + GOOD + "../outside.png,cat\n", ["line 6", "escapes the dataset root"]),
        ("path,label\n" + GOOD + "/etc/hostname,cat\n", ["line 6", "absolute path"]),
        ("path,label\n" + GOOD + "imgs/link.png,cat\n", ["line 6", "escapes the dataset root"]),
        ("path,label\n" + GOOD + "imgs/9.png,cat\n", ["images listed", "missing"]),
        ("path,label\n" + GOOD + "imgs/4.png,c\x00t\n", ["line 6"]),
    ],
)
def test_bad_csv_label_files_exit_2_naming_the_line(tmp_path, csv_root, text, needles):
    root, env = csv_root
    outside = tmp_path / "outside.png"
    shutil.copy(root / "imgs" / "0.png", outside)
    (root / "imgs" / "link.png").symlink_to(outside)
    (root / "labels.csv").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    refused(run_cli("run", "mine", *QUICK, "--out", str(out), env=env), *needles, out=out)


def test_bom_crlf_and_blank_lines_are_read(tmp_path, csv_root):
    root, env = csv_root
    text = "\ufeffpath,label\r\n\r\n" + GOOD.replace("\n", "\r\n") + "\r\nimgs/4.png,cat\r\n"
    (root / "labels.csv").write_text(text, encoding="utf-8", newline="")
    run_dir = last_line_dir(run_cli("run", "mine", *QUICK, "--out", str(tmp_path / "o"), env=env))
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(samples) == 5 and set(samples["given_name"]) == {"cat", "dog"}


@pytest.fixture(scope="module")
def rafdb(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("RAF")
    assert run_cli("synth-faces", str(root), "--train", "28", "--test", "7").returncode == 0
    return root


LIST = "EmoLabel/list_patition_label.txt"


@pytest.mark.parametrize(
    ("extra_line", "needles"),
    [
        ("train_00001.jpg 3", ["line 36", "already appears on line 1"]),
        ("train_00099.jpg 9", ["line 36", "outside 1..7"]),
        ("train_00099.jpg", ["line 36", "expected 'name label'"]),
        ("train_00099.jpg 2 extra", ["line 36", "expected 'name label'"]),
        ("train_00099.jpg two", ["line 36", "not an integer"]),
        ("../../etc/passwd 1", ["is not a RAF-DB name"]),
    ],
)
def test_bad_rafdb_lists_exit_2_naming_the_line(tmp_path, rafdb, extra_line, needles):
    root = tmp_path / "RAF"
    shutil.copytree(rafdb, root)
    with open(root / LIST, "a") as handle:
        handle.write(extra_line + "\n")
    out = tmp_path / "out"
    refused(
        run_cli("run", "raf-db", "--root", str(root), *QUICK, "--out", str(out)), *needles, out=out
    )


def test_rafdb_list_with_bom_and_crlf_is_read(tmp_path, rafdb):
    root = tmp_path / "RAF"
    shutil.copytree(rafdb, root)
    lines = (root / LIST).read_text().splitlines()
    (root / LIST).write_bytes(("\ufeff" + "\r\n\r\n".join(lines) + "\r\n").encode())
    run_dir = last_line_dir(
        run_cli("run", "raf-db", "--root", str(root), *QUICK, "--out", str(tmp_path / "o"))
    )
    assert len(pd.read_parquet(run_dir / "samples.parquet")) == 28


def test_checkpoint_that_would_run_code_is_refused(tmp_path, rafdb):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as handle:
        pickle.dump({"state_dict": RunsCode(marker)}, handle)
    out = tmp_path / "out"
    result = run_cli(
        "run", "raf-db", "--root", str(rafdb), *QUICK, "--weights", str(evil), "--out", str(out)
    )
    refused(result, "refused", out=out)
    assert not marker.exists()


def test_registry_with_python_tags_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    registry = tmp_path / "datasets.yaml"
    registry.write_text(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    refused(run_cli("datasets", env={"AUDIT_DATASETS": str(registry)}), "not plain YAML")
    assert not marker.exists()


@pytest.fixture(scope="module")
def formula_run(tmp_path_factory) -> Path:
    """A run whose class names and file names a spreadsheet would execute."""
    base = tmp_path_factory.mktemp("formula")
    root = base / "data"
    images(root, 12)
    names = ['=HYPERLINK("http://x")', "+SUM(1)", "@cmd", "-2+3"]
    rows = [f'imgs/{i}.png,"{names[i % 4].replace(chr(34), chr(34) * 2)}"' for i in range(12)]
    (root / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    registry = base / "datasets.yaml"
    registry.write_text(f"mine:\n  kind: csv\n  root: {root}\n")
    env = {"AUDIT_DATASETS": str(registry)}
    run_dir = last_line_dir(
        run_cli("run", "mine", *QUICK, "--noise-rate", "0.3", "--out", str(base / "o"), env=env)
    )
    return run_dir


def test_exported_csv_cells_are_neutralised(formula_run, tmp_path):
    out = tmp_path / "suspects.csv"
    result = run_cli("export", str(formula_run), "--top", "12", "--out", str(out))
    assert result.returncode == 0, result.stderr
    cells = [c for line in out.read_text().splitlines()[1:] for c in line.split(",")]
    names = [c.strip('"') for c in cells if "HYPERLINK" in c or "SUM" in c or "cmd" in c]
    assert names and all(n.startswith("'") for n in names)
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert not frame.map(lambda v: v[:1] in ("=", "+", "-", "@")).to_numpy().any()


def test_relabel_csv_with_unknown_ids_or_labels_is_refused_naming_rows(formula_run, tmp_path):
    samples = pd.read_parquet(formula_run / "samples.parquet")
    relabels = tmp_path / "relabels.csv"
    relabels.write_text(
        "sample_id,suggested_name,decision\n"
        f"{samples['sample_id'][0]},+SUM(1),relabel\n"
        "imgs/999.png,@cmd,relabel\n"
        f"{samples['sample_id'][1]},Unknown class,relabel\n"
        f"{samples['sample_id'][2]},@cmd,perhaps\n"
    )
    out = tmp_path / "corrected.csv"
    result = run_cli("apply", str(formula_run), "--relabels", str(relabels), "--out", str(out))
    refused(
        result,
        "3 rows refused",
        "line 3: unknown sample_id 'imgs/999.png'",
        "suggested_name 'Unknown class' is not a class",
        "line 5: decision 'perhaps'",
    )
    assert not out.exists()


def test_labels_file_with_unknown_samples_is_refused(formula_run, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nimgs/0.png,@cmd\nimgs/404.png,@cmd\n")
    env = {"AUDIT_DATASETS": str(formula_run.parents[2] / "datasets.yaml")}
    out = tmp_path / "out"
    result = run_cli("run", "mine", *QUICK, "--labels", str(labels), "--out", str(out), env=env)
    refused(result, "line 3 ('imgs/404.png')", out=out)


def test_apply_never_overwrites_the_dataset(formula_run):
    root = formula_run.parents[2] / "data"
    before = (root / "labels.csv").read_bytes()
    relabels = formula_run / "relabel.csv"
    result = run_cli(
        "apply",
        str(formula_run),
        "--relabels",
        str(relabels),
        "--out",
        str(root / "labels.csv"),
        env={"AUDIT_DATASETS": str(formula_run.parents[2] / "datasets.yaml")},
    )
    refused(result, "original labels are never modified")
    assert (root / "labels.csv").read_bytes() == before
