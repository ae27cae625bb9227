"""A method with an option and a detector, declared in test code alone (a plug-in module on
AUDIT_PLUGINS, no edit of the package), trained and scored through the real `audit run`."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli

PLUGIN = '''
"""A toy method: cross-entropy plus a per-sample signal `scaled_loss` = scale * loss, read
by the toy detector `scaled_loss_max` (its maximum over epochs)."""
from dataclasses import dataclass

import numpy as np
from torch.nn import functional as F

from auditor.detectors.registry import detector
from auditor.options import Options, option
from methods.base import Method, StepOutput, flip_and_erase, register_method


@dataclass(frozen=True)
class ToyOptions(Options):
    scale: float = option(1.0, "multiplies the recorded loss", above=0)


@register_method
class Toy(Method):
    name = "toy"
    options_class = ToyOptions
    extra_signals = ("scaled_loss",)

    def training_step(self, batch, aug):
        logits, _ = self(flip_and_erase(batch.x, aug))
        loss = F.cross_entropy(logits, batch.y, reduction="none")
        signal = self.options.scale * loss.detach()
        return StepOutput(loss=loss.mean(), logits=logits, signals={"scaled_loss": signal})


@detector("scaled_loss_max", reads=("signal:scaled_loss",))
def scaled_loss_max(scaled_loss: np.ndarray) -> np.ndarray:
    return scaled_loss.max(axis=0)
'''


@pytest.fixture
def plugin_env(tmp_path) -> dict:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_audit_plugin.py").write_text(textwrap.dedent(PLUGIN))
    return {"AUDIT_PLUGINS": "toy_audit_plugin", "PYTHONPATH": str(folder)}


@pytest.mark.slow
def test_a_plugin_method_and_detector_run_through_audit_run(tmp_path, plugin_env):
    args = ("run", "demo", "--limit", "200", "--epochs", "2", "--no-report", "--out", str(tmp_path))
    result = run_cli(*args, "--method", "toy", "--toy-scale", "3", env=plugin_env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["method"] == ["toy"] and manifest["config"]["toy_scale"] == 3.0
    samples = pq.read_table(run_dir / "samples.parquet").to_pandas()
    dynamics = pq.read_table(run_dir / "dynamics.parquet").to_pandas()
    # the option reached the method: its signal is 3 x the per-sample loss the engine recorded
    assert np.allclose(dynamics["scaled_loss"], 3 * dynamics["loss"], rtol=1e-4, atol=1e-5)
    # the detector scored the signal, keyed by sample
    expected = dynamics.groupby("sample_id")["scaled_loss"].max()
    scored = samples.set_index("sample_id")["score_toy_scaled_loss_max"]
    assert np.allclose(scored.loc[expected.index], expected, rtol=1e-5)
    assert "toy_scaled_loss_max" in json.loads((run_dir / "metrics.json").read_text())["detectors"]


def test_a_bad_plugin_option_exits_2_before_training(tmp_path, plugin_env):
    out = tmp_path / "out"
    result = run_cli(
        "run", "demo", "--method", "toy", "--toy-scale", "-1", "--out", str(out), env=plugin_env
    )
    assert result.returncode == 2
    assert "--toy-scale -1.0: must be above 0" in result.stderr
    assert not out.exists()  # nothing written


def test_a_signal_no_detector_reads_is_refused(tmp_path, plugin_env):
    source = (Path(plugin_env["PYTHONPATH"]) / "toy_audit_plugin.py").read_text()
    unread = source.replace('@detector("scaled_loss_max", reads=("signal:scaled_loss",))\n', "")
    (Path(plugin_env["PYTHONPATH"]) / "toy_audit_plugin.py").write_text(unread)
    result = run_cli("run", "demo", "--method", "toy", "--out", str(tmp_path), env=plugin_env)
    assert result.returncode == 2
    assert "records signal 'scaled_loss' that no detector reads" in result.stderr


def test_a_missing_plugin_is_named(tmp_path):
    result = run_cli("datasets", env={"AUDIT_PLUGINS": "no_such_audit_plugin"})
    assert result.returncode == 2
    assert "AUDIT_PLUGINS: cannot import plug-in 'no_such_audit_plugin'" in result.stderr


def test_every_builtin_method_draws_cams_of_its_classifier():
    import torch

    from methods import build_method
    from methods.backbones import build_backbone

    x = torch.zeros(2, 1, 28, 28)
    ce = build_method("ce", build_backbone("resnet-small", 1), 3).eval()
    rul = build_method("rul", build_backbone("resnet-small", 1), 3).eval()
    assert ce.cams(ce.backbone(x)).shape[:2] == (2, 3)
    assert rul.cams(rul.backbone(x)).shape[:2] == (2, 3)  # its own: contributions through mu
