"""End-to-end `audit run` of the FER loaders on fixtures in their exact layouts."""

import json

import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli
from tests.fer_fixtures import write_affectnet_official, write_affectnet_variant, write_ferplus
from tests.test_cli_e2e import last_line_dir
from tests.test_fer_loaders import write_csv_dataset

pytestmark = pytest.mark.slow
QUICK = ["--method", "ce", "--epochs", "1", "--image-size", "32"]


def test_ferplus_annotator_run_with_real_votes(tmp_path):
    root = write_ferplus(
        tmp_path / "FERPlus", {"Training": 200, "PublicTest": 20, "PrivateTest": 40}
    )
    result = run_cli(
        "run", "ferplus-annotator", "--root", str(root), *QUICK, "--out", str(tmp_path / "out")
    )
    run_dir = last_line_dir(result)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["noise"]["type"] == "ferplus-annotator"
    assert 0.1 < manifest["noise"]["real_rate"] < 0.35
    assert manifest["dataset_notes"]["protocol"] == "annotator"
    df = pq.read_table(run_dir / "samples.parquet").to_pandas()
    assert df["is_noisy"].notna().all() and df["sample_id"].str.startswith("train-").all()
    assert (
        json.loads((run_dir / "metrics.json").read_text())["detectors"]["suspicion"]["auroc"]
        is not None
    )


def test_ferplus_refuses_injected_noise_on_real_noise(tmp_path):
    root = write_ferplus(tmp_path / "F", {"Training": 30, "PrivateTest": 10})
    result = run_cli(
        "run", "ferplus-fer2013", "--root", str(root), "--noise-rate", "0.2", "--out", str(tmp_path)
    )
    assert result.returncode == 2 and "already carries labels" in result.stderr


@pytest.mark.parametrize("writer", [write_affectnet_official, write_affectnet_variant])
def test_affectnet_run(tmp_path, writer):
    codes = {"train": [i % 11 for i in range(60)], "test": [i % 7 for i in range(14)]}
    root = writer(tmp_path / "AffectNet", codes)
    result = run_cli(
        "run",
        "affectnet",
        "--balanced-sampling",
        "--root",
        str(root),
        *QUICK,
        "--noise-rate",
        "0.2",
        "--out",
        str(tmp_path / "o"),
    )
    run_dir = last_line_dir(result)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["dataset_notes"]["dropped"]["no_face"] > 0 and manifest["n_train"] == 40


def test_csv_run(tmp_path):
    labels = [["happy", "sad", "angry"][i % 3] for i in range(48)]
    root = write_csv_dataset(
        tmp_path / "mine", labels, ["test" if i % 6 == 0 else "train" for i in range(48)]
    )
    result = run_cli(
        "run",
        "csv",
        "--root",
        str(root),
        *QUICK,
        "--noise-rate",
        "0.2",
        "--out",
        str(tmp_path / "o"),
    )
    df = pq.read_table(last_line_dir(result) / "samples.parquet").to_pandas()
    assert len(df) == 40 and set(df["given_name"]) == {"happy", "sad", "angry"}


@pytest.mark.parametrize("name", ["ferplus", "affectnet", "csv"])
def test_missing_data_exits_2_with_the_files_needed(tmp_path, name):
    result = run_cli("run", name, "--root", str(tmp_path / "nothing"))
    assert result.returncode == 2
    needle = {"ferplus": "fer2013new.csv", "affectnet": "training.csv", "csv": "labels.csv"}[name]
    assert needle in result.stderr and "--root" in result.stderr
