"""`audit compare`: every detector x run in one table, test accuracy per method and run, and a
precision-recall figure, from finished run folders (of `audit run` or `audit score`). It also
says which detectors each run found rank-identical to another (metrics.json `rank_identical`,
`auditor.detectors.distinct`): their score was dropped, so the table has one row per ranking
plus, for deciding detectors, a row of their flags with `ranked_as` naming the kept score."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from auditor.fsutil import atomic_path
from auditor.outputs.files import write_csv, write_parquet
from auditor.outputs.run_folder import read_run

METRIC_COLUMNS = ["auroc", "ap", "precision_at_k", "precision", "recall", "f1", "flagged"]


def dropped_to_kept(metrics: dict) -> dict[str, str]:
    """A run's dropped detector -> the kept detector it ranks identically with; {} for a run
    written before `rank_identical` was recorded."""
    groups = metrics.get("rank_identical") or {}
    return {dropped: kept for kept, names in groups.items() for dropped in names}


def detector_table(runs: list[tuple[Path, dict, dict]]) -> pd.DataFrame:
    rows = []
    for run_dir, manifest, metrics in runs:
        noise = metrics.get("noise") or {}
        ranked_as = dropped_to_kept(metrics)
        for name, m in (metrics.get("detectors") or {}).items():
            rows.append({"run": str(run_dir), "run_id": manifest["run_id"], "dataset": manifest.get("dataset"),
                         "noise_type": noise.get("type"), "noise_rate": noise.get("real_rate"),
                         "detector": name, "ranked_as": ranked_as.get(name)}
                        | {c: m.get(c) for c in METRIC_COLUMNS})  # fmt: skip
    frame = pd.DataFrame(
        rows,
        columns=[
            "run",
            "run_id",
            "dataset",
            "noise_type",
            "noise_rate",
            "detector",
            "ranked_as",
            *METRIC_COLUMNS,
        ],
    )
    return frame.sort_values(
        ["run_id", "ap"], ascending=[True, False], kind="stable", na_position="last"
    )


def accuracy_table(runs: list[tuple[Path, dict, dict]]) -> pd.DataFrame:
    rows = [
        {"run_id": manifest["run_id"], "method": method, "last": a.get("last"), "best": a.get("best"),
         "last5_mean": a.get("last5_mean")}
        for _, manifest, metrics in runs for method, a in (metrics.get("accuracy") or {}).items()
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["run_id", "method", "last", "best", "last5_mean"])


def pr_figure(runs: list[tuple[Path, dict, dict]], path: Path, top: int = 5) -> bool:
    """Precision-recall curves of the ensemble and the `top` detectors by AP, one panel per run
    with known truth (`figures.pr_figure`). Returns False (and writes nothing) when no run knows
    the truth."""
    from auditor.outputs import figures

    panels = []
    for run_dir, manifest, metrics in runs:
        detectors = metrics.get("detectors")
        if not detectors:
            continue
        samples = pq.read_table(run_dir / "samples.parquet").to_pandas()
        scored = [n for n in detectors if f"score_{n}" in samples]  # not the flag-only ones
        ranked = sorted(scored, key=lambda n: -(detectors[n]["ap"] or 0))
        names = ["suspicion", *ranked[:top]]
        scores = {
            n: samples["suspicion" if n == "suspicion" else f"score_{n}"].to_numpy() for n in names
        }
        noisy = samples["is_noisy"].to_numpy(dtype=bool)
        panels.append((manifest["run_id"], scores, noisy, {n: detectors[n]["ap"] for n in names}))
    if not panels:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(figures.pr_figure(panels))
    return True


def compact_table(detectors: pd.DataFrame, runs: list[tuple[Path, dict, dict]]) -> list[str]:
    """Detector rows x run columns of 'AUROC / AP' ('as <kept>' for a detector whose score was
    dropped as rank-identical to <kept>'s), best mean AP first, and a legend of runs."""
    keys = {manifest["run_id"]: f"run{i + 1}" for i, (_, manifest, _) in enumerate(runs)}
    cells = detectors.assign(
        run=detectors["run_id"].map(keys),
        cell=[
            f"{a:.3f} / {p:.3f}" if a == a and p == p else f"as {r}" if isinstance(r, str) else "-"
            for a, p, r in zip(
                detectors["auroc"], detectors["ap"], detectors["ranked_as"], strict=True
            )
        ],
    )
    wide = cells.pivot_table(
        index="detector", columns="run", values="cell", aggfunc="first"
    ).fillna("")
    order = detectors.groupby("detector")["ap"].mean().sort_values(ascending=False).index
    legend = [f"  {key} = {run_id} ({m.get('dataset')}, noise {(met.get('noise') or {}).get('type')})"
              for (_, m, met), (run_id, key) in zip(runs, keys.items(), strict=True)]  # fmt: skip
    return wide.reindex(order).to_string().splitlines() + legend


def rank_identical_lines(runs: list[tuple[Path, dict, dict]]) -> list[str]:
    """Per run (`run1`, ... as in the table), each kept detector and those that ranked the
    samples exactly as it did and were dropped; `none`, or `not recorded` for a run written
    before rank-identical detectors were dropped (all its detectors are in the table)."""
    lines = ["rank-identical detectors (one score kept per ranking; the others' flags stay)"]
    for i, (_, _, metrics) in enumerate(runs):
        groups = metrics.get("rank_identical")
        if groups is None:
            text = "not recorded (a run from before they were dropped)"
        else:
            text = "; ".join(f"{k} = {', '.join(v)}" for k, v in groups.items()) or "none"
        lines.append(f"  run{i + 1}: {text}")
    return lines


def compare_runs(run_dirs: list[Path], out: str | None) -> list[str]:
    """Write the tables and the figure; return the lines to print."""
    runs = [(d, *read_run(d)) for d in run_dirs]
    detectors, accuracy = detector_table(runs), accuracy_table(runs)
    stem = Path(out) if out else Path("reports") / "compare" / time.strftime("%Y%m%d-%H%M%S")
    stem = stem.with_suffix("") if stem.suffix in (".csv", ".parquet") else stem
    write_csv(stem.with_suffix(".csv"), detectors)
    write_parquet(
        stem.with_suffix(".parquet"), pa.Table.from_pandas(detectors, preserve_index=False)
    )
    write_csv(stem.parent / f"{stem.name}-accuracy.csv", accuracy)
    figure = stem.parent / f"{stem.name}-pr.png"
    drew = pr_figure(runs, figure)
    lines = []
    if len(accuracy):
        lines += [
            "test accuracy",
            accuracy.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
            "",
        ]
    if len(detectors):
        lines += ["detectors: AUROC / AP per run"] + compact_table(detectors, runs) + [""]
    else:
        lines += ["no run knows the truth: no detector metrics to compare", ""]
    lines += rank_identical_lines(runs) + [""]
    lines += [f"wrote {stem.with_suffix('.csv')}, {stem.with_suffix('.parquet')}, {stem.name}-accuracy.csv"
              + (f", {figure.name}" if drew else "")]  # fmt: skip
    return lines
