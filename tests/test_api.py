"""The public Python API (`auditor.api`) against the command line it wraps: `audit(...)` writes
the samples.parquet `audit run` writes for the same options and seed, its option errors are the
CLI's as `UserError`, `open_run` refuses the damaged run folders the commands refuse with the
same sentence, and `score` returns the samples `audit score` writes."""

import json
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from auditor.api import Run, UserError, audit, open_run, score
from tests.conftest import run_cli
from tests.test_cli_e2e import last_line_dir

QUICK = {"methods": ["ce"], "limit": 200, "epochs": 1, "report": False}
QUICK_FLAGS = ["--method", "ce", "--limit", "200", "--epochs", "1", "--no-report"]


def cli_refusal(capsys, *argv: str) -> str:
    """stderr of `audit ARGV` run in this process (`auditor.cli.main`, the console script's
    function; the signal handlers it installs are put back), which must exit 2."""
    from auditor.cli import main

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    capsys.readouterr()
    try:
        code = main(list(argv))
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    return stderr.replace("\n", " ")


@pytest.mark.slow
def test_audit_writes_the_samples_audit_run_writes(tmp_path):
    run = audit("demo", out=str(tmp_path / "api"), **QUICK)
    result = run_cli("run", "demo", *QUICK_FLAGS, "--out", str(tmp_path / "cli"))
    assert result.returncode == 0, result.stderr[-3000:]
    cli_run = open_run(last_line_dir(result))
    pd.testing.assert_frame_equal(run.samples, cli_run.samples)
    assert (run.path / "samples.parquet").read_bytes() == (
        cli_run.path / "samples.parquet"
    ).read_bytes()
    command = run.manifest["command"]  # the `audit run` command of the same run
    assert command[:3] == ["audit", "run", "demo"] and set(QUICK_FLAGS) <= set(command)
    assert run.manifest["config"] == cli_run.manifest["config"] | {"out": str(tmp_path / "api")}
    flagged = run.suspects()
    assert flagged["flag_suspicion"].all() and len(flagged) == run.samples["flag_suspicion"].sum()
    assert flagged["suspicion"].is_monotonic_decreasing
    top = run.suspects(5)
    assert len(top) == 5 and top["suspicion"].iloc[0] == run.samples["suspicion"].max()
    assert set(run.accuracy) == {"ce"} and run.report_path is None
    assert "ensemble_decisions" in run.decisions
    relabels = pd.read_csv(run.export(top=7))
    assert len(relabels) == 7


@pytest.mark.slow
def test_audit_takes_images_and_labels_as_arrays(tmp_path):
    from auditor.datasets.fashion_mnist import read_idx

    fashion = Path("/usr/share/datasets/fashion-mnist")
    images = read_idx(fashion / "t10k-images-idx3-ubyte.gz")[:200]
    labels = read_idx(fashion / "t10k-labels-idx1-ubyte.gz")[:200].astype(np.int64)
    options = {"methods": ["ce"], "epochs": 1, "flip": False, "report": False}
    run = audit((images, labels), out=str(tmp_path), **options)
    samples = run.samples.sort_values("sample_id")
    assert samples["sample_id"].tolist() == [f"{n:06d}.png" for n in range(200)]
    assert (samples["given_label"].to_numpy() == labels).all()
    assert run.manifest["class_names"] == [str(c) for c in range(10)]
    again = audit((images, labels), out=str(tmp_path), **options)  # the same folder, reused
    assert again.manifest["config"]["root"] == run.manifest["config"]["root"]
    with pytest.raises(UserError, match="give uint8 pixels"):
        audit((images.astype(float), labels), out=str(tmp_path))
    with pytest.raises(UserError, match="give integer class ids"):
        audit((images, labels[:-1]), out=str(tmp_path))


@pytest.mark.parametrize(
    "options, flags",
    [
        ({"epochs": 0}, ["--epochs", "0"]),
        ({"noise_rate": 1.5}, ["--noise-rate", "1.5"]),
        ({"methods": ["nope"]}, ["--method", "nope"]),
    ],
)
def test_audit_refuses_what_audit_run_refuses_in_the_same_words(tmp_path, capsys, options, flags):
    with pytest.raises(UserError) as refused:
        audit("demo", out=str(tmp_path), **options)
    assert str(refused.value) in cli_refusal(capsys, "run", "demo", *flags, "--out", str(tmp_path))


def test_audit_refuses_unknown_options_and_datasets(tmp_path):
    with pytest.raises(UserError, match="unknown options epochz"):
        audit("demo", epochz=3)
    with pytest.raises(UserError, match="neither a registry name"):
        audit(tmp_path / "no-such-folder")
    with pytest.raises(UserError, match="kind fiftyone only"):
        audit("demo", label_field="ground_truth")


def scored_run(tmp_path) -> Run:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    labels = rng.integers(0, 4, size=200)
    return score(probs, labels, out=tmp_path).attrs["run"]


def damage(run: Run, how: str) -> None:
    if how == "metrics":
        (run.path / "metrics.json").write_text("{not json")
    elif how == "samples":
        (run.path / "samples.parquet").write_bytes(b"PAR1 truncated")
    elif how == "running":
        manifest = json.loads((run.path / "manifest.json").read_text())
        (run.path / "manifest.json").write_text(json.dumps(manifest | {"status": "running"}))
    elif how == "no-manifest":
        (run.path / "manifest.json").unlink()


@pytest.mark.parametrize("how", ["metrics", "samples", "running", "no-manifest"])
def test_open_run_refuses_damaged_folders_as_the_commands_do(tmp_path, capsys, how):
    run = scored_run(tmp_path)
    damage(run, how)
    with pytest.raises(UserError) as refused:
        open_run(run.path)
    assert str(refused.value) in cli_refusal(capsys, "export", str(run.path))


def test_score_returns_the_samples_audit_score_writes(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=150).astype(np.float32)
    labels = rng.integers(0, 3, size=150)
    frame = score(probs, labels, out=tmp_path / "api")
    np.save(tmp_path / "probs.npy", probs)
    np.save(tmp_path / "labels.npy", labels)
    result = run_cli(
        "score",
        "--pred-probs",
        str(tmp_path / "probs.npy"),
        "--labels",
        str(tmp_path / "labels.npy"),
        "--out",
        str(tmp_path / "cli"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    written = open_run(last_line_dir(result)).samples
    pd.testing.assert_frame_equal(
        frame.drop(columns="filepath"), written.drop(columns="filepath"), check_like=False
    )
    with pytest.raises(UserError, match="dtype float64, integer class ids needed"):
        score(probs, labels.astype(float), out=tmp_path / "api")
