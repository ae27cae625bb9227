"""report.html's explanations, `audit compare`'s spread sentence and --out, and --help's
defaults: fast, from inputs built by hand (no training)."""

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from auditor.accuracy_spread import mean_se, seed_stds, spread_lines, spread_sentence
from auditor.cli import early_problems, main
from auditor.compare import label_source
from auditor.evidence import Gallery
from auditor.memorisation import curves
from auditor.outputs import report
from auditor.outputs.tables import samples_table
from auditor.scoring import Scores
from tests.conftest import run_cli


def accuracy(per_epoch: list[float]) -> dict:
    return {
        "per_epoch": per_epoch,
        "last": per_epoch[-1],
        "best": max(per_epoch),
        "last5_mean": float(np.mean(per_epoch[-5:])),
    }


STEADY = accuracy([0.5, 0.6, 0.70, 0.71, 0.70, 0.72, 0.71])  # last five: std 0.0084
BETTER = accuracy([0.5, 0.6, 0.71, 0.72, 0.71, 0.73, 0.72])  # +0.010
MUCH_BETTER = accuracy([0.5, 0.6, 0.76, 0.77, 0.76, 0.78, 0.77])  # +0.060


def test_mean_se_reads_the_last_five_epochs():
    last5 = [0.70, 0.71, 0.70, 0.72, 0.71]
    assert mean_se(STEADY["per_epoch"]) == pytest.approx(statistics.stdev(last5) / 5**0.5)
    assert mean_se([0.4, float("nan"), 0.5]) == pytest.approx(statistics.stdev([0.4, 0.5]) / 2**0.5)
    assert mean_se([0.4]) is None


def test_spread_sentence_within_and_beyond():
    within = spread_sentence("eac", ("run1", "run2"), STEADY, BETTER, None)
    assert (
        within
        == "eac: run2 - run1 = +0.010, within the spread (standard error from the last epochs "
        "0.005; 2x = 0.011)"
    )
    beyond = spread_sentence("eac", ("run1", "run3"), STEADY, MUCH_BETTER, None)
    assert beyond.startswith("eac: run3 - run1 = +0.060, beyond the spread (")
    # an across-seed spread larger than the epochs' decides, and is named
    seeds = spread_sentence("ce", ("run1", "run2"), STEADY, MUCH_BETTER, 0.04)
    assert seeds == (
        "ce: run2 - run1 = +0.060, within the spread (standard error from the last epochs 0.005, "
        "across seeds, sqrt(2) x std 0.057; 2x the larger = 0.113)"
    )
    one_epoch = spread_sentence("ce", ("run1", "run2"), accuracy([0.7]), accuracy([0.8]), None)
    assert (
        one_epoch == "ce: run2 - run1 = +0.100, spread unknown (under two epochs per run, one seed)"
    )


def hand_run(seed: int, method_accuracy: dict, labels: str | None = None) -> tuple:
    config = {
        "dataset": "demo",
        "method": list(method_accuracy),
        "epochs": 7,
        "seed": seed,
        "labels": labels,
        "out": f"out{seed}",
    }
    run_id = f"r{seed}" + ("-cleaned" if labels else "")
    manifest = {"run_id": run_id, "dataset": "demo", "status": "complete", "config": config}
    metrics = {"accuracy": method_accuracy, "detectors": {}, "noise": {"type": "symmetric"}}
    return manifest, metrics


def test_seed_spread_pools_runs_that_differ_only_in_seed():
    runs = [
        (Path(f"r{i}"), *hand_run(i, {"ce": a}))
        for i, a in enumerate((STEADY, BETTER, MUCH_BETTER))
    ]
    runs.append((Path("cleaned"), *hand_run(0, {"ce": MUCH_BETTER}, labels="corrected.csv")))
    means = [STEADY["last5_mean"], BETTER["last5_mean"], MUCH_BETTER["last5_mean"]]
    stds = seed_stds(runs, "ce")
    assert stds[:3] == [pytest.approx(statistics.stdev(means))] * 3 and stds[3] is None
    lines = spread_lines(runs)
    assert lines[0].startswith("test accuracy (last-5 mean), each run against the first")
    assert "2x the spread" in lines[0] and len(lines) == 4
    assert lines[3] == (
        "ce: run4 - run1 = +0.060, within the spread (standard error from the last epochs 0.005, "
        "across seeds, sqrt(2) x std 0.045; 2x the larger = 0.091)"
    )


def write_hand_run(
    folder: Path, seed: int, method_accuracy: dict, labels: str | None = None
) -> str:
    """A run folder `audit compare` accepts: the hand-made manifest and metrics, with the
    class names and a samples.parquet of four samples laid out as `audit run` writes it."""
    manifest, metrics = hand_run(seed, method_accuracy, labels)
    manifest |= {"class_names": ["cat", "dog"], "n_train": 4}
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    given = np.array([0, 1, 0, 1])
    scores = Scores(
        {"suspicion": np.linspace(0, 1, 4)}, {"suspicion": given == 1}, np.full((4, 2), 0.5)
    )
    table = samples_table(
        sample_ids=np.array(list("abcd")),
        filepaths=np.array(list("abcd")),
        given=given,
        true=None,
        class_names=["cat", "dog"],
        scores=scores,
    )
    pq.write_table(table, folder / "samples.parquet")
    return str(folder)


@pytest.fixture
def two_runs(tmp_path: Path) -> list[str]:
    """Before and after cleaning: different label files, so no across-seed spread."""
    return [
        write_hand_run(tmp_path / "runs" / "a", 0, {"eac": STEADY}),
        write_hand_run(tmp_path / "runs" / "b", 0, {"eac": MUCH_BETTER}, "corrected.csv"),
    ]


NAMES = ("{}.csv", "{}.parquet", "{}-accuracy.csv")


def test_compare_out_names_a_folder(tmp_path, two_runs, capsys):
    existing = tmp_path / "existing"
    existing.mkdir()
    assert main(["compare", *two_runs, "--out", str(existing)]) == 0
    out = capsys.readouterr().out
    assert (
        "eac: run2 - run1 = +0.060, beyond the spread" in out and "run2 = r0-cleaned (demo" in out
    )
    assert all((existing / n.format("compare")).is_file() for n in NAMES)
    slash = tmp_path / "new"
    assert main(["compare", *two_runs, "--out", f"{slash}/"]) == 0
    assert all((slash / n.format("compare")).is_file() for n in NAMES)


def test_compare_out_is_otherwise_a_prefix(tmp_path, two_runs):
    assert main(["compare", *two_runs, "--out", str(tmp_path / "cmp" / "before.v2")]) == 0
    assert all((tmp_path / "cmp" / n.format("before.v2")).is_file() for n in NAMES)
    assert main(["compare", *two_runs, "--out", str(tmp_path / "table.csv")]) == 0
    assert all((tmp_path / n.format("table")).is_file() for n in NAMES)


def help_text(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_help_shows_every_default_once(capsys):
    review = help_text("review", capsys)
    assert "address the App binds to (default 127.0.0.1)" in review
    assert "port the App listens on (default 5151)" in review
    synth = help_text("synth-faces", capsys)
    for shown in (
        "training images (default 700)",
        "test images (default 210)",
        "noise files (default 0)",
    ):
        assert shown in synth
    assert "(default reports)" in help_text("score", capsys)
    compare = help_text("compare", capsys)
    assert "any other OUT is a file prefix" in compare and "compare-pr.png" in compare
    run = help_text("run", capsys)  # the generated flags state their own defaults
    assert "(default 1)" in run and "(default 256)" in run
    assert "held-out accuracy stops rising, 10 to 60" in " ".join(run.split())
    assert "default None" not in run and "default: None" not in run


def test_every_optional_flag_of_every_command_states_its_default():
    from auditor.cli_parser import build_parser

    parser = build_parser(run_flags=True)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        blocks = re.split(r"\n  (?=-)", sub.format_help().split("options:", 1)[1])
        for action in sub._actions:
            if not action.option_strings or action.required or action.dest == "help":
                continue
            block = next(b for b in blocks if b.lstrip().startswith(action.option_strings[0]))
            assert block.count("(default") == 1, (name, " ".join(block.split()))


def hand_report_inputs(n: int = 60, k: int = 3) -> dict:
    rng = np.random.default_rng(0)
    true = rng.integers(0, k, n)
    given = np.where(rng.random(n) < 0.3, (true + 1) % k, true)
    noisy = given != true
    suspicion = np.clip(noisy * 0.5 + rng.random(n) * 0.5, 0, 1)
    flags = suspicion >= np.quantile(suspicion, 0.7)
    samples = pd.DataFrame(
        {
            "sample_id": [f"{i:07d}" for i in range(n)],
            "given_label": given,
            "true_label": true,
            "is_noisy": noisy,
            "suggested_label": true,
            "suspicion": suspicion,
            "flag_suspicion": flags,
            "score_ce_aum": suspicion + rng.normal(0, 0.1, n),
        }
    )
    per_epoch = [0.5, 0.6, 0.7]
    correct = rng.random((3, n)) < 0.7
    loss = rng.random((3, n))
    tp = int((flags & noisy).sum())
    metrics = {
        "accuracy": {"ce": accuracy(per_epoch)},
        "memorisation": {"ce": curves(correct, loss, per_epoch, noisy)},
        "noise": {"type": "pair", "nominal_rate": 0.3, "real_rate": float(noisy.mean())},
        "detectors": {
            "ce_aum": {"auroc": 0.9, "ap": 0.8, "precision_at_k": 0.7},
            "ce_loss_gmm": {
                "auroc": None,
                "ap": None,
                "precision_at_k": None,
                "precision": 0.61,
                "recall": 0.72,
                "f1": 0.66,
                "flagged": 21,
            },
            "suspicion": {
                "auroc": 0.95,
                "ap": 0.9,
                "precision_at_k": 0.8,
                "precision": tp / flags.sum(),
                "recall": tp / noisy.sum(),
                "f1": 0.777,
                "flagged": int(flags.sum()),
            },
        },
        "ensemble": {
            "members": ["ce_aum", "ce_self_confidence"],
            "flagged": int(flags.sum()),
            "decisions": [
                "trusts ce (0.650)",
                "suspicion = mean rank of ce_aum, ce_self_confidence",
            ],
        },
    }
    manifest = {
        "dataset": "demo",
        "run_id": "20250101-000000-ce",
        "n_train": n,
        "n_test": 10,
        "config": {"out": "reports"},
        "timings_s": {"total": 1.0},
    }
    gallery = Gallery(
        rows=np.arange(2),
        images=np.zeros((2, 1, 8, 8), np.uint8),
        cams=np.ones((2, 4, 4)),
        mirror_cams=np.ones((2, 4, 4)),
        method="ce",
    )
    return {
        "manifest": manifest,
        "metrics": metrics,
        "samples": samples,
        "last_loss": {"ce": loss[-1]},
        "embeddings": rng.normal(size=(n, 8)),
        "gallery": gallery,
        "class_names": ["a", "b", "c"],
        "seed": 0,
    }


@pytest.fixture
def no_umap(monkeypatch):
    """The map's 2-D coordinates without UMAP (its numba compile is slow in a fresh cache)."""
    monkeypatch.setattr(report, "umap_coords", lambda e, seed: (np.arange(len(e)), e[:, :2]))


def test_report_explains_suspicion_scores_the_flags_and_ends_with_the_next_command(no_umap):
    text = report.build_report(**hand_report_inputs())
    assert "<code>suspicion</code> is the ensemble score, in [0, 1]" in text
    assert "<code>ce_aum</code>, <code>ce_self_confidence</code>" in text
    assert "<li>suspicion = mean rank of ce_aum, ce_self_confidence</li>" in text
    table = text[text.index("Deciding detectors against the truth") :]
    table = table[: table.index("</table>")]
    assert table.index("<td>suspicion</td>") < table.index("<td>ce_loss_gmm</td>")
    assert "<td>0.610</td><td>0.720</td><td>0.660</td><td>21</td>" in table
    assert "<td>ce_aum</td>" not in table  # it ranks, it does not flag
    assert text.count(">Test accuracy") == 2  # the protocols table and the curves, named apart
    assert (
        "<h3>Test accuracy by protocol</h3>" in text and "<h2>Test accuracy per epoch</h2>" in text
    )
    last = text[text.rindex("<section>") :]
    assert "<h2>Next: review the suspects</h2>" in last
    assert "<code>audit review reports/demo/20250101-000000-ce</code>" in last
    assert "audit export reports/demo/20250101-000000-ce --from-fiftyone" in last
    assert last.index("audit review") < last.index("audit export") < last.index("audit apply")
    for chip in ("given", "prediction", "suggested", "corrected", "cam, cam_mirror"):
        assert f"<td><code>{chip}</code></td>" in last  # the legend of the App's label chips


def test_report_without_truth_says_the_flags_cannot_be_scored(no_umap):
    inputs = hand_report_inputs()
    inputs["samples"] = inputs["samples"].assign(is_noisy=None, true_label=None)
    inputs["metrics"]["detectors"] = {}
    text = report.build_report(**inputs)
    assert "Precision, recall and F1 of the flags need the true labels" in text
    assert "Deciding detectors against the truth" not in text
    assert text.count("Left out: the true labels are unknown") == 2  # as test_report.py counts


def test_contradicting_label_sources_are_refused_before_torch_is_imported(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("")
    start = time.perf_counter()
    result = run_cli(
        "run",
        "demo",
        "--labels",
        str(labels),
        "--noise-rate",
        "0.3",
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    seconds = time.perf_counter() - start
    assert result.returncode == 2
    assert "audit: error: --labels and --noise-rate > 0 together" in result.stderr
    imported = {
        line.split("|")[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert imported and "torch" not in imported and "methods" not in imported
    assert seconds < 5, seconds


def test_early_problems_read_only_what_they_know():
    assert early_problems(
        ["run", "demo", "--eac-lambda", "5", "--noise-file=n.txt", "--noise-rate", "0.2"]
    ) == ["--noise-file and --noise-rate > 0 together: a noise file already sets the labels"]
    assert early_problems(["run", "demo", "--labels", "l.csv", "--noise-file", "n.txt"]) == [
        "--labels and --noise-file together: choose one label source"
    ]
    assert early_problems(["run", "demo", "--labels", "l.csv", "--noise-rate", "0"]) == []
    assert (
        early_problems(["run", "demo", "--labels", "l.csv", "--noise-rate", "x"]) == []
    )  # the full parser says why
    assert (
        early_problems(["run", "demo", "--labels", "l.csv", "--noise-r", "0.3"]) == []
    )  # abbreviated: the full parser


def test_compare_names_where_each_runs_labels_came_from():
    corrected = {"config": {"labels": "/data/raf/corrected.txt", "noise_file": None}}
    assert label_source(corrected, {"noise": {"type": "none"}}) == "labels corrected.txt"
    noise_file = {"config": {"labels": None, "noise_file": "/x/noise.txt"}}
    assert label_source(noise_file, {}) == "noise file noise.txt"
    injected = {"noise": {"type": "symmetric", "real_rate": 0.3}}
    assert label_source({"config": {}}, injected) == "symmetric noise injected, real rate 0.300"
    assert label_source({}, {}) == "labels as given, no noise injected"  # `audit score`
