"""`audit score` on a user's predictions and `audit compare` over run folders."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from auditor.cli import main
from auditor.compare import compare_runs
from auditor.predictions import score_predictions
from auditor.summary import summary_lines


def make_predictions(tmp_path: Path, seed: int, n: int = 600, k: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < 0.25
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), true] += 2.5
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float16)
    paths = {}
    for name, array in (("probs", probs), ("given", given), ("true", true)):
        paths[name] = tmp_path / f"{name}{seed}.npy"
        np.save(paths[name], array)
    return paths


def test_score_writes_a_run_folder(tmp_path):
    p = make_predictions(tmp_path, 0)
    run_dir, metrics = score_predictions(
        str(p["probs"]), str(p["given"]), str(p["true"]), str(tmp_path / "out"), ["audit"]
    )
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    names = {
        "cleanlab",
        "cleanlab_both",
        "cleanlab_confident_learning",
        "predicted_neq_given",
        "self_confidence",
        "normalized_margin",
        "mistakenness",
        "confident_disagreement",
        "suspicion",
    }
    assert names == set(metrics["detectors"])
    assert metrics["detectors"]["self_confidence"]["auroc"] > 0.8
    df = pq.read_table(run_dir / "samples.parquet").to_pandas()
    assert len(df) == 600 and df["flag_cleanlab"].dtype == bool
    # the cleanlab filters score with normalized_margin: one score, their four sets of flags
    filters = ["cleanlab", "cleanlab_both", "cleanlab_confident_learning", "predicted_neq_given"]
    assert metrics["rank_identical"] == {"normalized_margin": filters}
    assert not {f"score_{f}" for f in filters} & set(df.columns)
    assert metrics["detectors"]["cleanlab"]["auroc"] is None
    assert metrics["detectors"]["cleanlab"]["f1"] > 0.5
    assert (run_dir / "relabel.csv").is_file() and (run_dir / "dynamics.parquet").is_file()


def test_score_without_truth_has_no_detector_metrics(tmp_path):
    p = make_predictions(tmp_path, 1)
    _, metrics = score_predictions(
        str(p["probs"]), str(p["given"]), None, str(tmp_path / "out"), ["audit"]
    )
    assert metrics["detectors"] == {}
    flagged = metrics["ensemble"]["flagged"]
    assert f"flagged {flagged:,} samples as suspects (flag_suspicion)" in summary_lines(metrics)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda p: np.save(p["given"], np.zeros(5, int)), "expected shape (600,)"),
        (lambda p: np.save(p["given"], np.full(600, 9)), "outside 0..3"),
        (lambda p: np.save(p["probs"], np.full((600, 4), -1.0)), "non-negative"),
        (
            lambda p: np.save(p["probs"], np.array([{"a": 1}] * 600, dtype=object)),
            "a plain numeric array (bool, integer or float) needed",
        ),
        # class ids: one refusal for every dtype that is not integer, floats and strings alike
        (lambda p: np.save(p["given"], np.zeros(600)), "dtype float64, integer class ids needed"),
        (lambda p: np.save(p["given"], np.full(600, "1")), "dtype <U1, integer class ids needed"),
        (lambda p: np.save(p["given"], np.zeros(600, int)), "every label is class 0"),
        (lambda p: np.save(p["probs"], np.ones((600, 1))), "K >= 2 classes, got (600, 1)"),
        (lambda p: np.save(p["probs"], np.zeros((0, 4))), "N >= 1 rows"),
        (lambda p: np.save(p["probs"], np.zeros(600, "f8,f8,f8,f8")), "a plain numeric array"),
        (lambda p: np.save(p["probs"], np.full((600, 4), "a")), "dtype <U1"),
        (lambda p: np.save(p["probs"], np.full((600, 4), 1e308)), "row 0 sums to inf"),
        (lambda p: np.save(p["probs"], np.full((600, 4), np.nan)), "row 0, class 0 holds nan"),
        (lambda p: p["probs"].write_bytes(b"PK\x03\x04 an npz"), "not a .npy file"),
        (lambda p: (p["given"].unlink(), p["given"].mkdir()), "given2.npy: a folder"),
    ],
)
def test_score_bad_input_exits_2(tmp_path, capsys, mutate, needle):
    p = make_predictions(tmp_path, 2)
    mutate(p)
    code = main(
        [
            "score",
            "--pred-probs",
            str(p["probs"]),
            "--labels",
            str(p["given"]),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_compare_tables_and_figure(tmp_path):
    runs = []
    for seed in (3, 4):
        p = make_predictions(tmp_path, seed)
        runs.append(
            score_predictions(
                str(p["probs"]), str(p["given"]), str(p["true"]), str(tmp_path / "out"), ["audit"]
            )[0]
        )
    metrics = json.loads((runs[1] / "metrics.json").read_text())
    del metrics["rank_identical"]  # as a run written before it was recorded
    (runs[1] / "metrics.json").write_text(json.dumps(metrics))
    lines = compare_runs(runs, str(tmp_path / "cmp" / "table"))
    text = "\n".join(lines)
    assert "detectors: AUROC / AP per run" in text and "run1" in text and "run2" in text
    assert (
        "  run1: normalized_margin = cleanlab, cleanlab_both, cleanlab_confident_learning, "
        "predicted_neq_given" in lines
    )
    assert "  run2: not recorded (a run from before they were dropped)" in lines
    table = pq.read_table(tmp_path / "cmp" / "table.parquet").to_pandas()
    assert len(table) == 2 * 9 and set(table["run_id"]) == {r.name for r in runs}
    ranked_as = table.set_index(["run_id", "detector"])["ranked_as"]
    assert ranked_as[(runs[0].name, "cleanlab")] == "normalized_margin"
    assert pd.isna(ranked_as[(runs[1].name, "cleanlab")])
    assert (tmp_path / "cmp" / "table.csv").is_file()
    png = (tmp_path / "cmp" / "table-pr.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_compare_a_run_whose_truth_has_no_noisy_sample(tmp_path):
    """The truth is known but equals the given labels: every AUROC / AP is undefined (null);
    the table says '-' and the figure is left out, never a crash."""
    p = make_predictions(tmp_path, 5)
    run_dir, _ = score_predictions(
        str(p["probs"]), str(p["given"]), str(p["given"]), str(tmp_path / "out"), ["audit"]
    )
    lines = compare_runs([run_dir], str(tmp_path / "cmp" / "table"))
    assert any(line.startswith("suspicion") and line.split()[-1] == "-" for line in lines), lines
    assert (tmp_path / "cmp" / "table.csv").is_file()
    assert not (tmp_path / "cmp" / "table-pr.png").exists()


def test_compare_refuses_incomplete_runs(tmp_path, capsys):
    bad = tmp_path / "run"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"status": "running", "run_id": "x"}')
    (bad / "metrics.json").write_text("{}")
    assert main(["compare", str(bad)]) == 2
    assert "not complete" in capsys.readouterr().err
