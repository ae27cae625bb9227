"""Hostile option values and input arrays through the real CLI (issue 18): every value that
would crash, hang or silently spoil training is refused before it (exit 2, naming the flag, no
run folder, the dataset untouched); a training that still diverges is refused naming its
settings; `audit score` refuses arrays that are not plain numeric .npy files, naming the flag
and the file. The configuration layer itself is tested fast in test_config.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from auditor.errors import UserError
from auditor.synth_faces_folder import check_room
from methods.backbones import build_backbone
from tests.conftest import run_cli
from tests.hostile import QUICK, Case, digest, images, refused, run_batch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    """12 PNGs of 3 classes as a csv dataset `mine`; its environment and the digest of its root."""
    base = tmp_path_factory.mktemp("hostile-options")
    root = base / "data"
    images(root, 12)
    rows = [f"imgs/{i}.png,c{i % 3}" for i in range(12)]
    (root / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (base / "datasets.yaml").write_text(f"mine:\n  kind: csv\n  root: {root}\n")
    return {
        "root": root,
        "env": {"AUDIT_DATASETS": str(base / "datasets.yaml")},
        "digest": digest(root),
    }


def run_mine(dataset: dict, out: Path, *args: str):
    """`audit run mine` (ce, 1 epoch, 16 px, no report) with `args`, writing under `out`."""
    return run_cli("run", "mine", *QUICK, *args, "--out", str(out), env=dataset["env"])


@pytest.mark.parametrize(
    "args",
    [
        ("--lr", "nan"),
        ("--lr", "-1"),
        ("--lr", "1e30"),  # trained to NaN and wrote NaN scores, exit 0
        ("--weight-decay", "1e39"),
        ("--seed", "-1"),
        ("--seed", str(2**32)),  # NumPy's legacy seeding (--folds, asymmetric noise) failed
        ("--seed", str(2**63)),  # torch.manual_seed failed after the run folder was made
        ("--epochs", str(10**9)),  # asked for 52 GB of signal records at the first step
        ("--image-size", "1"),
        ("--image-size", "100000"),
        ("--workers", "-1"),
        ("--workers", str(10**6)),
        ("--folds", "0"),
        ("--folds", str(10**6)),  # checked against the class sizes, after loading
        ("--method", "eac", "--eac-lambda", "nan"),
        ("--method", "eac", "--eac-lambda", "1e300"),  # an infinite loss in float32
        ("--method", "scn", "--scn-lr", "inf"),
        ("--method", "rul", "--rul-fc-lr", "1e30"),
    ],
    ids=lambda args: " ".join(args),
)
def test_an_option_that_would_spoil_training_is_refused_before_it(dataset, tmp_path, args):
    flag = next(a for a in reversed(args) if a.startswith("--"))
    refused(run_mine(dataset, tmp_path / "o", *args), f"{flag} ", out=tmp_path / "o")
    assert digest(dataset["root"]) == dataset["digest"]


def test_every_bad_option_of_one_command_is_named_at_once(dataset, tmp_path):
    args = [
        "--lr",
        "inf",
        "--seed",
        str(10**30),
        "--epochs",
        "0",
        "--batch-size",
        "1",
        "--lr-gamma",
        "2",
        "--scn-delta1",
        "5",
        "--scn-delta2",
        "-1",
        "--scn-beta",
        "1",
        "--noise-sparsity",
        "nan",
        "--limit",
        "1",
    ]
    result = run_mine(dataset, tmp_path / "o", *args)
    refused(result, *(f"{a} " for a in args if a.startswith("--")), out=tmp_path / "o")


def save_backbone(path: Path, change) -> Path:
    """A resnet-small checkpoint whose floating tensors went through `change`."""
    state = build_backbone("resnet-small", 3).state_dict()
    torch.save({k: change(v) if v.is_floating_point() else v for k, v in state.items()}, path)
    return path


def test_a_checkpoint_holding_nan_is_refused_naming_the_file_and_tensor(dataset, tmp_path):
    weights = save_backbone(tmp_path / "nan.pth", lambda v: v.fill_(float("nan")))
    first = next(iter(torch.load(weights, weights_only=True)))
    result = run_mine(dataset, tmp_path / "o", "--weights", str(weights))
    refused(result, f"--weights {weights}: tensor {first!r} holds", out=tmp_path / "o")


@pytest.fixture(scope="module")
def diverged(dataset, tmp_path_factory) -> dict:
    """A run from finite weights so large (3e38) that the first forward pass overflows: only
    training can show it."""
    base = tmp_path_factory.mktemp("diverged")
    weights = save_backbone(base / "huge.pth", lambda v: torch.where(v < 0, -3e38, 3e38))
    result = run_mine(dataset, base / "o", "--weights", str(weights))
    (run_dir,) = (base / "o" / "mine").iterdir()
    return {"result": result, "run_dir": run_dir, "weights": weights}


def test_a_diverged_training_is_refused_naming_its_settings(diverged, dataset):
    result = diverged["result"]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "ce: training diverged, its probabilities are NaN or infinite" in result.stderr
    assert f"--lr 0.001, --weights {diverged['weights']}" in result.stderr
    manifest = json.loads((diverged["run_dir"] / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "training diverged" in manifest["error"]
    assert not (diverged["run_dir"] / "samples.parquet").exists()  # no NaN scores written
    assert digest(dataset["root"]) == dataset["digest"]


def test_a_run_that_failed_on_its_settings_does_not_offer_a_resume_that_cannot_help(diverged):
    assert "audit run --resume" not in diverged["result"].stderr
    before = digest(diverged["run_dir"])
    resumed = run_cli("run", "--resume", str(diverged["run_dir"]))
    refused(resumed, "start a new run")
    assert digest(diverged["run_dir"]) == before


def test_a_manifest_config_out_of_bounds_is_refused_on_resume(dataset, tmp_path):
    """A folder whose recorded config holds values `audit run` now refuses (written by hand or
    by an older version) is refused the same way, naming the flags, and left as it was."""
    result = run_mine(dataset, tmp_path / "o")
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    manifest["config"] |= {"seed": 2**32, "lr": 1e30, "epochs": 10**9}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    before = digest(run_dir)
    resumed = run_cli("run", "--resume", str(run_dir), env=dataset["env"])
    refused(resumed, "--lr 1e+30: must be at most 1", "--seed 4294967296", "--epochs 1000000000")
    assert digest(run_dir) == before


def write_fifo(path: Path) -> None:
    os.mkfifo(path)  # reading it would block until a writer came: it must never be opened


def write_lying_header(path: Path) -> None:
    """A .npy header declaring 7 TiB over 800 bytes of data."""
    with path.open("wb") as handle:
        header = {"descr": "<f8", "fortran_order": False, "shape": (10**11, 10)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(bytes(800))


@pytest.mark.parametrize(
    ("flag", "write", "needle"),
    [
        ("--pred-probs", lambda p: p.mkdir(), "a folder, not a .npy file"),
        ("--pred-probs", write_fifo, "not a regular file"),
        ("--pred-probs", write_lying_header, "unreadable as a .npy array"),
        (
            "--pred-probs",
            lambda p: np.save(p, np.array([[{}, 1]] * 30, object)),
            "unreadable as a .npy array",  # objects are never unpickled
        ),
        (
            "--pred-probs",
            lambda p: np.save(p, np.full((30, 3), np.inf)),
            "row 0, class 0 holds inf",
        ),
        ("--labels", lambda p: np.save(p, np.ones(30, int)), "every label is class 1"),
        (
            "--true-labels",
            lambda p: np.save(p, np.zeros((30, 1), "i8,i8")),
            "dtype [('f0', '<i8'), ('f1', '<i8')], integer class ids needed",
        ),
    ],
    ids=["folder", "fifo", "lying-header", "objects", "infinity", "one-class", "structured"],
)
def test_score_refuses_arrays_that_are_not_plain_numeric_naming_flag_and_file(
    tmp_path, flag, write, needle
):
    rng = np.random.default_rng(0)
    files = {
        "--pred-probs": tmp_path / "p.npy",
        "--labels": tmp_path / "y.npy",
        "--true-labels": tmp_path / "t.npy",
    }
    np.save(files["--pred-probs"], rng.dirichlet(np.ones(3), 30))
    np.save(files["--labels"], np.arange(30) % 3)
    np.save(files["--true-labels"], np.arange(30) % 3)
    files[flag].unlink()
    write(files[flag])
    argv = [a for f, path in files.items() for a in (f, str(path))]
    result = run_cli("score", *argv, "--out", str(tmp_path / "o"), timeout=120)
    refused(result, f"{flag} {files[flag]}: {needle}", out=tmp_path / "o")


COUNTS = [
    (["synth-faces", "F", "--train", "100000000"], "--train: 100000000: must be at most 20,000"),
    (["synth-faces", "F", "--test", "100000000"], "--test: 100000000: must be at most 20,000"),
    (["synth-faces", "F", "--seed", str(2**64)], f"--seed: {2**64}: must be at most 4,294,967,295"),
    (["synth-faces", "F", "--seed", "-1"], "--seed: -1: must be at least 0"),
    (["review", "R", "--port", "70000"], "--port: 70000: must be at most 65,535"),
    (["review", "R", "--port", "0"], "--port: 0: must be at least 1"),
    (["review", "R", "--top", str(10**30)], "--top: 1000000000000000000000000000000: must be at"),
    (["export", "R", "--top", str(10**30)], "--top: 1000000000000000000000000000000: must be at"),
    (["export", "R", "--top", "1" * 5000], "--top: '11111111111111111111111111111111111111"),
    (["run", "mine", "--nproc", str(10**21)], "--nproc: 1000000000000000000000: must be at most"),
]


def test_every_count_option_of_every_command_is_bounded(tmp_path):
    """The count options outside `audit run`'s declared ones (tested in test_config.py): a value
        past its bound is refused when parsed (exit 2, argparse's usage and one line naming the flag
    and the bound), before a
        folder is made, a port is waited on or a process started; a 5,000-digit number is not
        echoed whole."""
    cases = [Case([str(tmp_path / w) if w in "FR" else w for w in argv]) for argv, _ in COUNTS]
    for result, (_, needle) in zip(run_batch(cases), COUNTS, strict=True):
        refused(result, needle)
        assert len(result.stderr.strip().splitlines()[-1]) < 200, result.stderr  # argparse's
    assert not any(tmp_path.iterdir())


def test_synth_faces_checks_the_free_disk_space_first(tmp_path):
    with pytest.raises(UserError, match="synth-faces needs about .* MB and .* free"):
        check_room(tmp_path / "faces", 10**18)  # an exabyte
    assert not (tmp_path / "faces").exists()
