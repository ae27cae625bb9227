"""Run folders edited or damaged after the fact, through the real CLI: `audit export`, `apply`,
`compare`, `review --no-launch` and `run --resume` exit 2 with one sentence, "this run folder
is damaged: <file> <what>", never a traceback, and change nothing in the run folder or the
dataset's root. (The checks themselves, fast and with hypothesis:
tests/test_run_folder_shapes.py.)"""

import json
import os
import pickle
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from methods.backbones import build_backbone
from tests.conftest import AUDIT, run_cli
from tests.hostile import QUICK, csv_dataset, digest, refused
from tests.test_cli_e2e import last_line_dir
from tests.test_hostile_checkpoints import declare_size
from tests.test_untrusted_input import RunsCode

pytestmark = pytest.mark.slow
DAMAGED = "this run folder is damaged"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    """12 images of two classes in a csv dataset `mine`, and the environment naming its registry."""
    return csv_dataset(tmp_path_factory.mktemp("damaged"))


@pytest.fixture(scope="module")
def complete(dataset, tmp_path_factory) -> Path:
    """A finished run with every file, embeddings, CAMs and near-duplicate pairs included."""
    out = tmp_path_factory.mktemp("complete")
    return last_line_dir(
        run_cli("run", "mine", *QUICK, "--noise-rate", "0.3", "--out", str(out), env=dataset[1])
    )


@pytest.fixture(scope="module")
def interrupted(dataset, tmp_path_factory) -> Path:
    """A run stopped by SIGTERM after its first epochs: `interrupted`, with checkpoints/ce.pt."""
    out = tmp_path_factory.mktemp("interrupted")
    quick = [*QUICK[:3], "200", *QUICK[4:]]  # 200 epochs: still training when the signal comes
    process = subprocess.Popen(
        [str(AUDIT), "run", "mine", *quick, "--out", str(out)],
        env=os.environ | dataset[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not list(out.glob("mine/*/checkpoints/ce.pt")):
        assert process.poll() is None and time.time() < deadline, process.stderr.read()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    (run_dir,) = out.glob("mine/*")
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    return run_dir


def edit_json(name: str, change: Callable[[dict], object]) -> Callable[[Path], None]:
    """A damage: `change` applied to the JSON object in file `name`, written back."""

    def damage(run_dir: Path) -> None:
        value = json.loads((run_dir / name).read_text())
        change(value)
        (run_dir / name).write_text(json.dumps(value))

    return damage


def edit_samples(change: Callable[[pa.Table], pa.Table]) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        pq.write_table(
            change(pq.read_table(run_dir / "samples.parquet")), run_dir / "samples.parquet"
        )

    return damage


def column(name: str, values: Callable[[pa.Table], pa.Array]) -> Callable[[pa.Table], pa.Table]:
    return lambda t: t.set_column(t.column_names.index(name), name, values(t))


def write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda run_dir: (run_dir / name).write_bytes(data)


def truncate(name: str) -> Callable[[Path], None]:
    return lambda run_dir: (run_dir / name).write_bytes((run_dir / name).read_bytes()[:600])


def into_folder(name: str) -> Callable[[Path], None]:
    def damage(run_dir: Path) -> None:
        (run_dir / name).unlink()
        (run_dir / name).mkdir()

    return damage


def utf16(name: str) -> Callable[[Path], None]:
    return lambda run_dir: (run_dir / name).write_bytes(
        (run_dir / name).read_text(encoding="utf-8").encode("utf-16")
    )


def remove(name: str) -> Callable[[Path], None]:
    return lambda run_dir: (run_dir / name).unlink()


def config(change: Callable[[dict], object]) -> Callable[[Path], None]:
    return edit_json("manifest.json", lambda m: change(m["config"]))


SAMPLES, MANIFEST, METRICS = "samples.parquet", "manifest.json", "metrics.json"
COMPLETE_CASES = [
    (remove(SAMPLES), "export", [SAMPLES, "is missing"]),
    (remove(SAMPLES), "compare", [SAMPLES, "is missing"]),
    (truncate(SAMPLES), "apply", [SAMPLES, "cannot be read as Parquet"]),
    (truncate(SAMPLES), "review", [SAMPLES, "cannot be read as Parquet"]),
    (into_folder(SAMPLES), "export", [SAMPLES, "is a folder"]),
    (into_folder(SAMPLES), "compare", [SAMPLES, "is a folder"]),
    (write(MANIFEST, b'{"run_id": '), "export", [MANIFEST, "is not valid JSON"]),
    (write(MANIFEST, b'{"run_id": '), "compare", [MANIFEST, "is not valid JSON"]),
    (write(MANIFEST, b"\xff\xfe{}"), "review", [MANIFEST, "is not UTF-8 text"]),
    (utf16(MANIFEST), "export", [MANIFEST, "is not UTF-8 text"]),  # json.loads(bytes) read it
    (write(MANIFEST, b"[1, 2]"), "apply", [MANIFEST, "holds [1, 2], expected an object"]),
    (write(METRICS, b"{"), "compare", [METRICS, "is not valid JSON"]),
    (write(METRICS, b"null"), "export", [METRICS, "expected an object"]),
    (remove(METRICS), "compare", [METRICS, "is missing"]),
    (
        edit_json(METRICS, lambda m: m["detectors"]["suspicion"].update(ap="high")),
        "compare",
        [METRICS, "`detectors.suspicion.ap` = 'high', expected a number or null"],
    ),
    (edit_json(MANIFEST, lambda m: m.pop("class_names")), "export", [MANIFEST, "no `class_names`"]),
    (edit_json(MANIFEST, lambda m: m.pop("class_names")), "review", [MANIFEST, "no `class_names`"]),
    (
        edit_json(MANIFEST, lambda m: m.update(class_names=["cat"])),
        "apply",
        [SAMPLES, "given_label 1, but manifest.json has 1 class_names"],
    ),
    (edit_json(MANIFEST, lambda m: m.update(class_names=["cat"])), "review", [SAMPLES, "label 1"]),
    (
        edit_json(MANIFEST, lambda m: m.update(class_names=["dog", "cat"])),
        "export",
        [SAMPLES, "which manifest.json class_names calls"],
    ),
    (
        edit_json(MANIFEST, lambda m: m["config"].update(root=7)),
        "apply",
        [MANIFEST, "`config.root` = 7, expected a string or null"],
    ),
    (edit_samples(lambda t: t.drop(["suspicion"])), "export", [SAMPLES, "has no column suspicion"]),
    (edit_samples(lambda t: t.drop(["probs"])), "compare", [SAMPLES, "has no column probs"]),
    (
        edit_samples(column("given_label", lambda t: t["given_label"].cast(pa.string()))),
        "apply",
        [SAMPLES, "column given_label of type string, expected int64"],
    ),
    (
        edit_samples(column("suggested_label", lambda t: pa.array([9] * len(t), pa.int64()))),
        "export",
        [SAMPLES, "suggested_label 9"],
    ),
    (
        edit_samples(column("suggested_label", lambda t: pa.array([9] * len(t), pa.int64()))),
        "compare",
        [SAMPLES, "suggested_label 9"],
    ),  # found before any of compare's files is written
    (
        edit_samples(lambda t: t.slice(0, 5)),
        "compare",
        [SAMPLES, "5 rows, but manifest.json says n_train 12"],
    ),
    (write("embeddings.npy", b"\x93NUMPY garbage"), "review", ["embeddings.npy", "optional"]),
    (
        lambda r: np.save(r / "embeddings.npy", np.zeros((3, 4), np.float32)),
        "review",
        ["embeddings.npy", "float32 (3, 4), expected floats [12, D]"],
    ),
    (write("cams.npz", b"PK\x03\x04 not a zip"), "review", ["cams.npz", "cannot be read by NumPy"]),
    (
        write("near_duplicates.csv", b"a,b\n1,2\n"),
        "review",
        ["near_duplicates.csv", "no column sample_id_a"],
    ),
]


def command(name: str, run_dir: Path, scratch: Path) -> list[str]:
    return {
        "export": ["export", str(run_dir)],
        "apply": [
            "apply",
            str(run_dir),
            "--relabels",
            str(run_dir / "relabel.csv"),
            "--out",
            str(scratch / "corrected.csv"),
        ],
        "compare": ["compare", str(run_dir), "--out", f"{scratch}/"],
        "review": ["review", str(run_dir), "--no-launch"],
        "resume": ["run", "--resume", str(run_dir)],
    }[name]


def damaged_copy(run: Path, damage: Callable[[Path], None], tmp_path: Path) -> Path:
    """A copy of `run` in its own `<out>/mine/` (a ledger of its own), damaged."""
    copy = tmp_path / "out" / "mine" / run.name
    shutil.copytree(run, copy)
    damage(copy)
    return copy


def refused_changing_nothing(
    copy: Path, name: str, needles: list[str], tmp_path: Path, root: Path, env: dict
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before, root_before = digest(copy.parent), digest(root)
    result = run_cli(*command(name, copy, scratch), env=env)
    refused(result, DAMAGED, *needles)
    assert "audit run --resume" not in result.stderr, result.stderr
    assert digest(copy.parent) == before and digest(root) == root_before
    assert not any(scratch.iterdir())


@pytest.mark.parametrize(
    ("damage", "name", "needles"),
    COMPLETE_CASES,
    ids=[f"{c[1]}: {' '.join(c[2])}" for c in COMPLETE_CASES],
)
def test_a_damaged_complete_run_is_refused_naming_the_file(
    complete, dataset, tmp_path, damage, name, needles
):
    copy = damaged_copy(complete, damage, tmp_path)
    refused_changing_nothing(copy, name, needles, tmp_path, *dataset)


def save_to(name: str, state: object) -> Callable[[Path], None]:
    return lambda run_dir: torch.save(state, run_dir / "checkpoints" / name)


def itself() -> dict:
    state: dict = {"epochs_done": 1}
    state["model"] = state
    return state


def pickled(value: object) -> Callable[[Path], None]:
    return lambda run_dir: (run_dir / "checkpoints" / "ce.pt").write_bytes(pickle.dumps(value))


def edit_checkpoint(change: Callable[[dict], object]) -> Callable[[Path], None]:
    """A damage: `change` applied to the state in checkpoints/ce.pt, saved back."""

    def damage(run_dir: Path) -> None:
        state = torch.load(run_dir / CKPT, weights_only=True)
        change(state)
        torch.save(state, run_dir / CKPT)

    return damage


def checkpoints_as_a_file(run_dir: Path) -> None:
    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "checkpoints").write_text("not a folder")


CKPT = "checkpoints/ce.pt"
RESUME_CASES = [
    (config(lambda c: c.update(batch_size=None)), [MANIFEST, "config with batch_size null"]),
    (config(lambda c: c.pop("epochs")), [MANIFEST, "config with no epochs"]),
    (config(lambda c: c.update(batch_size=0)), [MANIFEST, "--batch-size 0: must be at least 2"]),
    (config(lambda c: c.update(epochs="3")), [MANIFEST, "--epochs '3': must be int"]),
    (config(lambda c: c.update(method=["sgd"])), [MANIFEST, "--method sgd: choose from"]),
    (config(lambda c: c.update(colour="blue")), [MANIFEST, "unknown options colour"]),
    (edit_json(MANIFEST, lambda m: m.update(processes="two")), [MANIFEST, "`processes` = 'two'"]),
    (truncate(CKPT), [f"checkpoint {{run}}/{CKPT} is truncated", "delete it"]),
    (write(CKPT, b"garbage" * 100), [CKPT, "no zip archive", "delete it"]),
    (save_to("ce.pt", itself()), [CKPT, "`model.epochs_done` = 1, expected a Tensor"]),
    (
        save_to("ce-fold1.pt", [1, 2]),
        ["checkpoints/ce-fold1.pt", "holds [1, 2], expected an object"],
    ),
    (checkpoints_as_a_file, ["checkpoints is not a folder", "delete it"]),
    (lambda r: declare_size(r / CKPT, 0xF0000000), [CKPT, "declares 4.", "GB of data"]),
    (edit_checkpoint(lambda s: s.update(current=torch.zeros(1).expand(10**12))), [CKPT, "stride"]),
]


@pytest.mark.parametrize(
    ("damage", "needles"), RESUME_CASES, ids=[" ".join(c[1]) for c in RESUME_CASES]
)
def test_a_damaged_unfinished_run_is_not_resumed(interrupted, dataset, tmp_path, damage, needles):
    copy = damaged_copy(interrupted, damage, tmp_path)
    needles = [n.format(run=copy) for n in needles]
    refused_changing_nothing(copy, "resume", needles, tmp_path, *dataset)


def test_a_checkpoint_that_would_run_code_is_refused_unrun(interrupted, dataset, tmp_path):
    marker = tmp_path / "pwned"
    copy = damaged_copy(interrupted, pickled({"model": RunsCode(marker)}), tmp_path)
    refused_changing_nothing(copy, "resume", [CKPT, "no zip archive"], tmp_path, *dataset)
    assert not marker.exists()


def test_a_checkpoint_of_another_model_is_refused_before_the_manifest_changes(
    interrupted, dataset, tmp_path
):
    """Read, of the right shape, but of another backbone: every checkpoint is fitted to the
    model it continues before the manifest is touched (it used to be marked `failed`, resumed
    and its error set, by a refusal)."""

    def other_backbone(run_dir: Path) -> None:
        state = torch.load(run_dir / CKPT, weights_only=True)
        other = build_backbone("resnet18", 3).state_dict()
        head = {k: v for k, v in state["model"].items() if not k.startswith("backbone.")}
        state["model"] = head | {f"backbone.{k}": v for k, v in other.items()}
        torch.save(state, run_dir / CKPT)

    copy = damaged_copy(interrupted, other_backbone, tmp_path)
    needles = [CKPT, "does not fit this run's training", "backbone.conv1.weight", "delete it"]
    refused_changing_nothing(copy, "resume", needles, tmp_path, *dataset)
