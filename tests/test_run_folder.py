"""A whole audit in-process on tiny generated data: the run folder's files and schema
(docs/run-folder.md)."""

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auditor.config import resolve
from auditor.datasets.registry import DatasetEntry
from auditor.run import execute

ENTRY = DatasetEntry(
    name="tiny-faces",
    kind="synth-faces",
    root=None,
    env=None,
    classes=None,
    defaults={},
    options={"train": 70, "test": 21, "size": 24},
    mirror_symmetric=True,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    cli = {
        "method": ["ce,eac"],
        "noise_rate": 0.3,
        "epochs": 2,
        "image_size": 16,
        "batch_size": 32,
        "device": "cpu",
        "report": False,
        "out": str(out),
        "seed": 7,
    }
    config = resolve(ENTRY.name, cli, ENTRY.defaults)
    run_dir, metrics = execute(config, ENTRY, ["audit", "run", "tiny-faces"])
    return run_dir, metrics


def test_run_folder_files_and_manifest(run):
    run_dir, _ = run
    for name in (
        "manifest.json",
        "samples.parquet",
        "dynamics.parquet",
        "metrics.json",
        "relabel.csv",
    ):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob(".*.tmp"))  # nothing half-written left behind
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["noise"]["type"] == "symmetric" and manifest["noise"]["nominal_rate"] == 0.3
    assert manifest["config"]["method"] == ["ce", "eac"]
    assert {"torch", "cleanlab", "numpy"} <= set(manifest["versions"])
    assert manifest["timings_s"]["total"] > 0


def test_samples_parquet_schema(run):
    run_dir, _ = run
    table = pq.read_table(run_dir / "samples.parquet")
    types = {f.name: str(f.type) for f in table.schema}
    expected = {
        "sample_id": "string",
        "filepath": "string",
        "given_label": "int64",
        "given_name": "string",
        "true_label": "int64",
        "is_noisy": "bool",
        "pred_label": "int64",
        "suggested_label": "int64",
        "suggested_confidence": "double",
        "suspicion": "double",
    }
    for column, kind in expected.items():
        assert types[column] == kind, column
    for method in ("ce", "eac"):
        for det in ("loss_mean", "aum", "self_confidence", "normalized_margin"):
            assert types[f"score_{method}_{det}"] == "double"
        # cleanlab scores with normalized_margin itself: its score is dropped, its flags stay
        assert (
            types[f"flag_{method}_cleanlab"] == "bool" and f"score_{method}_cleanlab" not in types
        )
    assert types["score_eac_flip_cam"] == "double" and "score_ce_flip_cam" not in types
    probs_type = table.schema.field("probs").type
    assert pa.types.is_list(probs_type) and probs_type.value_type == pa.float32()
    df = table.to_pandas()
    assert len(df) == 70 and df["sample_id"].is_unique
    assert df["suspicion"].between(0, 1).all()
    assert np.array_equal(df["is_noisy"], df["given_label"] != df["true_label"])
    assert np.allclose([sum(p) for p in df["probs"]], 1.0, atol=1e-4)


def test_rank_identical_scores_are_kept_once_and_every_flag_stays(run):
    run_dir, metrics = run
    columns = pq.read_table(run_dir / "samples.parquet").schema.names
    groups = metrics["rank_identical"]
    dropped = {name for names in groups.values() for name in names}
    assert set(groups) <= {c[len("score_") :] for c in columns if c.startswith("score_")}
    assert not {f"score_{name}" for name in dropped} & set(columns)
    assert {"ce_cleanlab", "eac_predicted_neq_given"} <= dropped
    for flag in (c for c in columns if c.startswith("flag_") and c != "flag_suspicion"):
        name = flag[len("flag_") :]
        assert f"score_{name}" in columns or name in dropped, name
    det = metrics["detectors"]["ce_cleanlab"]  # flags measured without a score
    assert det["auroc"] is None and det["ap"] is None and det["flagged"] >= 0
    assert json.loads((run_dir / "metrics.json").read_text())["rank_identical"] == groups


def test_manifest_noise_rate_is_the_real_one(run):
    run_dir, metrics = run
    df = pq.read_table(run_dir / "samples.parquet").to_pandas()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["noise"]["real_rate"] == pytest.approx(df["is_noisy"].mean())
    assert metrics["noise"]["real_rate"] == pytest.approx(df["is_noisy"].mean())


def test_dynamics_long_format(run):
    run_dir, _ = run
    df = pq.read_table(run_dir / "dynamics.parquet").to_pandas()
    assert list(df.columns[:3]) == ["epoch", "sample_id", "method"]
    assert len(df) == 2 * 2 * 70  # methods x epochs x samples
    assert df.groupby(["method", "epoch"]).sample_id.nunique().eq(70).all()
    assert df.loc[df.method == "ce", "flip_cam"].isna().all()
    assert df.loc[df.method == "eac", "flip_cam"].notna().all()


def test_metrics_and_relabel(run):
    run_dir, metrics = run
    assert set(metrics["accuracy"]) == {"ce", "eac"}
    assert len(metrics["accuracy"]["ce"]["per_epoch"]) == 2
    det = metrics["detectors"]
    assert {"suspicion", "ce_aum", "eac_flip_cam", "ce_cleanlab"} <= set(det)
    assert {"auroc", "ap", "precision_at_k", "precision", "recall", "f1", "flagged"} <= set(
        det["suspicion"]
    )
    with open(run_dir / "relabel.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == det["suspicion"]["flagged"]
    assert list(rows[0]) == [
        "sample_id",
        "filepath",
        "given_label",
        "given_name",
        "suggested_label",
        "suggested_name",
        "suggested_confidence",
        "suspicion",
        "detectors",
        "run_id",
        "decision",
    ]
    suspicion = [float(r["suspicion"]) for r in rows]
    assert suspicion == sorted(suspicion, reverse=True)
    assert all("suspicion" in r["detectors"].split(";") for r in rows)


def test_a_failed_write_leaves_the_old_file_or_none(tmp_path):
    from auditor.fsutil import atomic_path

    target = tmp_path / "metrics.json"
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text('{"half": ')
        raise OSError("disk full")
    assert not target.exists() and not list(tmp_path.iterdir())
    target.write_text("old")
    with pytest.raises(OSError), atomic_path(target) as tmp:
        tmp.write_text("new, half")
        raise OSError("disk full")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_a_run_that_fails_is_marked_failed_not_complete(tmp_path):
    from auditor.outputs.run_folder import RunState

    state = RunState.start(tmp_path, "demo", ["ce"], {"dataset": "demo"})
    with pytest.raises(RuntimeError), state.recording(0.0):
        raise RuntimeError("out of memory")
    manifest = json.loads((state.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "out of memory" in manifest["error"]
