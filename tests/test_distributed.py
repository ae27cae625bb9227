"""Two training processes on the CPU (torchrun, gloo) through the real CLI: every sample's
signals recorded exactly once per epoch, results written once by process 0; a two-process run
stopped by SIGTERM resumes, with its two processes, to the samples of an uninterrupted one."""

import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.test_cli_e2e import last_line_dir
from tests.test_interrupt import RUN, interrupt, status

pytestmark = pytest.mark.slow
RUN_2 = [*RUN, "--nproc", "2"]  # ce + scn (SCN relabels: merged across processes), 300 samples


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    run_dir = last_line_dir(run_cli(*RUN_2, "--out", str(out)))
    assert [p.name for p in (out / "demo").iterdir()] == [run_dir.name]  # one folder
    return run_dir


def assert_every_sample_recorded_once(run_dir: Path, processes: int = 2, n: int = 300) -> None:
    """A complete run of `processes` training processes over `n` samples recorded every sample's
    signals exactly once in every epoch of every method (tests/test_multinode.py uses it too)."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["processes"] == processes
    dynamics = pd.read_parquet(run_dir / "dynamics.parquet")
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(samples) == n
    for (_method, _epoch), rows in dynamics.groupby(["method", "epoch"]):
        assert sorted(rows["sample_id"]) == sorted(samples["sample_id"])
        # a sample recorded by no process would read 0, by both a sum: p > 1 or correct = 2
        assert (rows["p_given"] > 0).all() and (rows["p_given"] <= 1).all()
        assert set(np.unique(rows["correct"])) <= {0.0, 1.0}
        assert np.allclose(rows["loss"], -np.log(rows["p_given"]), atol=1e-4)


def test_two_processes_record_every_sample_once_and_write_once(straight):
    assert_every_sample_recorded_once(straight)
    assert json.loads((straight / "metrics.json").read_text())["accuracy"]["ce"]["last"] > 0.1


def test_a_two_process_run_resumes_to_the_same_samples(tmp_path, straight):
    run_dir, code = interrupt(tmp_path, signal.SIGTERM, RUN_2)
    assert code == 130 and status(run_dir) == "interrupted"
    assert not (run_dir / "samples.parquet").exists()
    result = run_cli("run", "--resume", str(run_dir), "--nproc", "3")
    assert result.returncode == 2 and "trains with 2 process(es)" in result.stderr
    assert last_line_dir(run_cli("run", "--resume", str(run_dir))) == run_dir  # 2 processes again
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["processes"] == 2
    for name in ("samples.parquet", "dynamics.parquet"):
        assert pd.read_parquet(run_dir / name).equals(pd.read_parquet(straight / name)), name


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended while we looked
            continue
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_launcher_stops_its_training_processes(tmp_path):
    run_dir, code = interrupt(tmp_path, signal.SIGKILL, RUN_2)
    assert code == -signal.SIGKILL
    deadline = time.time() + 120
    while processes_mentioning(str(tmp_path)):
        assert time.time() < deadline, "torchrun's processes outlived the launcher"
        time.sleep(0.2)
    assert status(run_dir) == "interrupted"  # torchrun got SIGTERM and passed it on
