"""bench/scale.py's command stages: each `audit` command a user runs on the generated dataset
(run, review, export, apply, score), run in its own process and measured by the driver
(`scale.Bench`: its `cli`, `row` and `notes`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from scale_disk import cache_bytes, check_disk  # bench/, beside this script
from scale_stages import test_count

if TYPE_CHECKING:
    from scale import Bench


def audit_run(bench: Bench) -> Path | None:
    a = bench.args
    shutil.rmtree(bench.work / "cache" / "run", ignore_errors=True)
    check_disk(
        bench.work,
        cache_bytes(a.n + test_count(a.n_all), a.run_size),
        f"the {a.run_size} px cache of the run",
    )
    root = bench.data
    print(f"run: audit run affectnet on {a.n:,} images at {a.run_size} px", flush=True)
    m = bench.cli(
        "run",
        "run",
        "affectnet",
        "--root",
        str(root),
        "--method",
        "ce",
        "--epochs",
        "1",
        "--image-size",
        str(a.run_size),
        "--backbone",
        a.backbone,
        "--workers",
        str(a.workers),
        "--out",
        str(bench.work / "runs"),
        *a.run_args,
    )
    bench.row(f"audit run (ce, 1 epoch, {a.backbone})", a.n, a.run_size, m)
    if not m.ok:
        return None
    run_dir = Path(m.stdout.strip().splitlines()[-1])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in manifest.get("timings_s", {}).items())
    from auditor.outputs.report import MAP_POINTS

    bench.notes.append(
        f"audit run phases: {phases}; the report's UMAP map drew "
        f"{min(a.n, MAP_POINTS):,} of {a.n:,} samples (MAP_POINTS = {MAP_POINTS:,})"
    )
    return run_dir


def audit_review(bench: Bench, run_dir: Path) -> None:
    for earlier in bench.fiftyone.parent.glob("*"):  # earlier invocations' databases
        shutil.rmtree(earlier, ignore_errors=True)
    print("review: audit review --no-launch", flush=True)
    m = bench.cli("review", "review", str(run_dir), "--no-launch")
    bench.row("audit review --no-launch (FiftyOne import)", bench.args.n, None, m)
    os.environ |= {"FIFTYONE_DATABASE_DIR": str(bench.fiftyone), "FIFTYONE_DO_NOT_TRACK": "true"}
    from auditor.brain import VIS_POINTS  # imports fiftyone, which connects to nothing yet

    bench.notes.append(
        f"review: the FiftyOne `umap` brain run on {min(bench.args.n, VIS_POINTS):,} "
        f"of {bench.args.n:,} samples (VIS_POINTS = {VIS_POINTS:,})"
    )


def audit_export(bench: Bench, run_dir: Path) -> Path | None:
    print("export: audit export", flush=True)
    out = bench.logs / "suspects.csv"
    m = bench.cli("export", "export", str(run_dir), "--out", str(out))
    bench.row("audit export (suspects)", bench.args.n, None, m)
    return out if m.ok else None


def audit_apply(bench: Bench, run_dir: Path, suspects: Path) -> None:
    import pandas as pd

    decisions = pd.read_csv(suspects, dtype=str, keep_default_na=False)
    decisions["decision"], decisions["new_name"] = "relabel", ""  # to the tool's suggestion
    relabels = bench.logs / "decisions.csv"
    decisions.to_csv(relabels, index=False)
    bench.notes.append(f"apply: {len(decisions):,} suspects relabelled to the suggestion")
    print(f"apply: audit apply ({len(decisions):,} decisions)", flush=True)
    m = bench.cli(
        "apply",
        "apply",
        str(run_dir),
        "--relabels",
        str(relabels),
        "--out",
        str(bench.logs / "corrected.csv"),
    )
    bench.row("audit apply", bench.args.n, None, m)


def audit_score(bench: Bench) -> None:
    import numpy as np
    from scoring_scale import synthetic_probabilities

    n, k = bench.args.n, 7
    true, given, _noisy, _logits, probs = synthetic_probabilities(n, k, np.random.default_rng(0))
    files = {}
    for name, array in (("probs", probs), ("labels", given), ("true", true)):
        files[name] = bench.logs / f"score-{name}.npy"
        np.save(files[name], array)
    print(f"score: audit score on {n:,} x {k} probabilities", flush=True)
    m = bench.cli(
        "score",
        "score",
        "--pred-probs",
        str(files["probs"]),
        "--labels",
        str(files["labels"]),
        "--true-labels",
        str(files["true"]),
        "--out",
        str(bench.work / "runs"),
    )
    bench.row("audit score (probabilities)", n, None, m)
