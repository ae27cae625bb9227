"""Two training processes on the CPU (torchrun, gloo) through the real CLI: every sample's
signals recorded exactly once per epoch, results written once by process 0."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow


def test_two_processes_record_every_sample_once_and_write_once(tmp_path):
    result = run_cli("run", "demo", "--limit", "300", "--epochs", "2", "--method", "ce,scn",
                     "--nproc", "2", "--no-report", "--out", str(tmp_path))  # fmt: skip
    run_dir = last_line_dir(result)
    assert [p.name for p in (tmp_path / "demo").iterdir()] == [run_dir.name]  # one folder
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["processes"] == 2
    dynamics = pd.read_parquet(run_dir / "dynamics.parquet")
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(samples) == 300
    for (_method, _epoch), rows in dynamics.groupby(["method", "epoch"]):
        assert sorted(rows["sample_id"]) == sorted(samples["sample_id"])
        # a sample recorded by no process would read 0, by both a sum: p > 1 or correct = 2
        assert (rows["p_given"] > 0).all() and (rows["p_given"] <= 1).all()
        assert set(np.unique(rows["correct"])) <= {0.0, 1.0}
        assert np.allclose(rows["loss"], -np.log(rows["p_given"]), atol=1e-4)
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy"]["ce"]["last"] > 0.1
