"""Bad registries and hostile datasets through the real CLI (issue 18): each exits 2 with one
sentence naming the file (and its line, key or sample), never a traceback and never a silent
drop; the dataset's files are never changed; file names that survive are read back exactly.
(The registry's and the names' rules one by one: tests/test_datasets.py.)"""

import csv
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.hostile import QUICK, digest, images, refused
from tests.test_cli_e2e import last_line_dir
from tests.test_datasets import SECRET, alias_bomb

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (None, ["is a folder; it must be a YAML file"]),
        (b"x:\n  kind: \xd0\xff\n", ["line 2: not UTF-8"]),
        (b"x:\n  kind: csv\n  root: [1, 2]\n", ["line 3: `root` of dataset 'x' must be text"]),
        (
            b"x:\n  kind: csv\n  defaults: 5\n",
            ["line 3: `defaults` of dataset 'x' must be a mapping"],
        ),
        (b"x:\n", ["line 1: entry 'x' must be a mapping with a 'kind'"]),
        (b"x:\n  kind: csv\ny:\n  kind: csv\nx:\n  kind: csv\n", ["line 5: 'x' is given twice"]),
        (b"x:\n  kind: csv\n  rooot: /data\n", ["line 1 (dataset 'x'): unknown key 'rooot'"]),
        (b"x:\n  kind: csv\n  defaults: {image-size: 3}\n", ["'image-size' is not an option name"]),
        (alias_bomb().encode(), ["its aliases expand to more than 100,000 values"]),
    ],
)
def test_bad_registries_exit_2_naming_the_file_and_line(tmp_path, text, needles):
    registry = tmp_path / "datasets.yaml"
    if text is None:
        registry.mkdir()
    else:
        registry.write_bytes(text)
    start = time.perf_counter()
    result = run_cli("datasets", env={"AUDIT_DATASETS": str(registry)})
    refused(result, str(registry), *needles)
    assert time.perf_counter() - start < 30  # an alias bomb is refused, not expanded


def test_unknown_defaults_are_refused_by_run_naming_the_key(tmp_path):
    registry = tmp_path / "datasets.yaml"
    registry.write_text(f"x:\n  kind: csv\n  root: {tmp_path}\n  defaults: {{epochz: 3}}\n")
    out = tmp_path / "out"
    result = run_cli("run", "x", *QUICK, "--out", str(out), env={"AUDIT_DATASETS": str(registry)})
    refused(result, "epochz", out=out)


def csv_dataset(base: Path, names: list[str], labels: list[str]) -> tuple[Path, dict]:
    """A csv dataset under base/data: one 16x16 PNG per name (made where missing), a labels.csv
    listing them, and the env of a registry whose `mine` entry points at it."""
    root = base / "data"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label"])
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if not (root / name).exists():
            Image.fromarray(np.full((16, 16, 3), 20 * i, np.uint8)).save(root / name, "PNG")
        writer.writerow([name, label])
    (root / "labels.csv").write_text(buffer.getvalue())
    registry = base / "datasets.yaml"
    registry.write_text(f"mine:\n  kind: csv\n  root: {root}\n  classes: [cat, dog]\n")
    return root, {"AUDIT_DATASETS": str(registry)}


GOOD = [f"imgs/{i}.png" for i in range(4)]


@pytest.mark.parametrize(
    ("labels_csv", "needles"),
    [
        (b"path,label\n", ["labels.csv: no rows under its header"]),
        (b"path,label\nimgs/0.png,cat\nimgs/1.png,caf\xe9\n", ["labels.csv, line 3: not UTF-8"]),
        (
            b"path,label\nimgs/0.png,cat\nimgs/1.png,cat\n",
            ["every training sample is labelled 'cat'"],
        ),
        (
            b'path,label\nimgs/0.png,cat\n"imgs/a\nb.png",dog\n',
            ["'imgs/a\\nb.png' holds a control character"],
        ),
        (
            b"path,label\nimgs/0.png,cat\nimgs/1.png ,dog\n",
            ["'imgs/1.png ' begins or ends with a space"],
        ),
        (None, ["labels.csv: expected a header", "text not shown: the file lies outside"]),
    ],
)
def test_bad_csv_datasets_exit_2_before_training(tmp_path, labels_csv, needles):
    """Listed by `audit datasets` (it never decodes a label file), refused by `audit run` before
    any training, naming the file (and line or sample); a label file linked outside the root is
    never quoted."""
    root, env = csv_dataset(tmp_path, GOOD, ["cat", "dog"] * 2)
    (root / "imgs" / "a\nb.png").write_bytes((root / GOOD[0]).read_bytes())
    (root / "imgs" / "1.png ").write_bytes((root / GOOD[1]).read_bytes())
    labels = root / "labels.csv"
    labels.unlink()
    if labels_csv is None:
        (tmp_path / "secret").write_text(SECRET + "\n")
        labels.symlink_to(tmp_path / "secret")
    else:
        labels.write_bytes(labels_csv)
    before = digest(root)
    listing = run_cli("datasets", env=env)
    assert listing.returncode == 0 and "mine" in listing.stdout, listing.stderr
    out = tmp_path / "out"
    result = run_cli("run", "mine", *QUICK, "--out", str(out), env=env)
    refused(result, str(root), *needles, out=out)
    assert "SECRET" not in result.stderr and digest(root) == before


def test_a_file_name_that_is_not_utf8_is_refused_by_name(tmp_path):
    root = tmp_path / "data"
    images(root / "cat", 2)
    images(root / "dog", 2)
    (root / "cat" / "imgs" / "caf\udce9.png").write_bytes(
        (root / "cat" / "imgs" / "0.png").read_bytes()
    )
    env = {"AUDIT_IMAGEFOLDER_ROOT": str(root)}
    assert run_cli("datasets", env=env).returncode == 0
    out = tmp_path / "out"
    result = run_cli("run", "imagefolder", *QUICK, "--out", str(out), env=env)
    refused(result, "b'cat/imgs/caf\\xe9.png' is not UTF-8", out=out)


# Names a spreadsheet or a CSV reader could change: formula and quote prefixes, quotes, commas,
# spaces inside (a name that begins or ends with a space is refused: test_hostile_labels.py).
# The first two differ only by the quote the exports put in front of `=`.
NAMES = [
    "'=x.png",
    "=x.png",
    '"q.png',
    "a,b.png",
    "imgs/in side.png",
    "imgs/two  spaces.png",
    "'plain.png",
    "@at.png",
    "-1.png",
    "imgs/ok0.png",
    "imgs/ok1.png",
    "imgs/ok2.png",
]


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory) -> tuple[pd.Series, pd.Series, dict, dict, dict]:
    """Audit, export the 12 samples, relabel each to the other class, apply, retrain on the
    corrected file: (given labels before, after, the decisions, the root's digest before, after)."""
    base = tmp_path_factory.mktemp("names")
    root, env = csv_dataset(base, NAMES, ["cat", "dog"] * 6)
    before = digest(root)
    run_dir = last_line_dir(run_cli("run", "mine", *QUICK, "--out", str(base / "o"), env=env))
    suspects = base / "suspects.csv"
    assert (
        run_cli("export", str(run_dir), "--top", "12", "--out", str(suspects), env=env).returncode
        == 0
    )
    rows = list(csv.reader(suspects.open(newline="")))
    header, decision = rows[0] + ["new_name"], rows[0].index("decision")
    for row in rows[1:]:  # what an annotator's CSV editor does: only the decision cells change
        row[decision] = "relabel"
        row.append("dog" if row[header.index("given_name")] == "cat" else "cat")
    with (base / "decided.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows[1:]])
    corrected = base / "corrected.csv"
    applied = run_cli(
        "apply",
        str(run_dir),
        "--relabels",
        str(base / "decided.csv"),
        "--out",
        str(corrected),
        env=env,
    )
    assert applied.returncode == 0, applied.stderr
    again = last_line_dir(
        run_cli(
            "run", "mine", *QUICK, "--labels", str(corrected), "--out", str(base / "o2"), env=env
        )
    )

    def given(folder: Path) -> pd.Series:
        return pd.read_parquet(folder / "samples.parquet").set_index("sample_id")["given_name"]

    flipped = {name: "dog" if i % 2 == 0 else "cat" for i, name in enumerate(NAMES)}
    return given(run_dir), given(again), flipped, before, digest(root)


def test_file_names_survive_export_apply_and_retraining(round_trip):
    first, second, flipped, before, after = round_trip
    assert sorted(first.index) == sorted(NAMES) == sorted(second.index)
    assert second.to_dict() == flipped  # every decision reached its own sample, none another
    assert before == after  # the dataset's files were never changed
