"""`audit compare`: every detector x run in one table, test accuracy per method and run, and a
precision-recall figure, from finished run folders (of `audit run` or `audit score`). It also
says which detectors each run found rank-identical to another (metrics.json `rank_identical`,
`auditor.detectors.distinct`): their score was dropped, so the table has one row per ranking
plus, for deciding detectors, a row of their flags with `ranked_as` naming the kept score; and
whether each run's test accuracy differs from the first run's by more than the spread the runs
show (`auditor.accuracy_spread`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from auditor.accuracy_spread import spread_lines
from auditor.errors import UserError
from auditor.fsutil import atomic_path
from auditor.outputs.files import write_csv, write_parquet
from auditor.outputs.run_readers import read_run, read_samples
from auditor.write_guard import check_out, named_path, run_dataset_root

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
            rows.append(
                {
                    "run": str(run_dir),
                    "run_id": manifest["run_id"],
                    "dataset": manifest.get("dataset"),
                    "noise_type": noise.get("type"),
                    "noise_rate": noise.get("real_rate"),
                    "detector": name,
                    "ranked_as": ranked_as.get(name),
                }
                | {c: m.get(c) for c in METRIC_COLUMNS}
            )
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
    """Per run and method: the accuracy protocols and the `split` they were read on (test, or
    the validation split the run held out)."""
    rows = [
        {
            "run_id": manifest["run_id"],
            "method": method,
            "split": split_of(metrics),
            "last": a.get("last"),
            "best": a.get("best"),
            "last5_mean": a.get("last5_mean"),
        }
        for _, manifest, metrics in runs
        for method, a in (metrics.get("accuracy") or {}).items()
    ]
    return pd.DataFrame(rows, columns=["run_id", "method", "split", "last", "best", "last5_mean"])


def split_of(metrics: dict) -> str:
    return metrics.get("accuracy_split") or "test"


def validation_caution(runs: list[tuple[Path, dict, dict]]) -> list[str]:
    """One sentence when some run read its accuracy on a validation split of its own: such a
    split holds other samples, with other (given, noisy) labels, from one run to the next (a
    retrain on corrected labels draws it from the corrected ones), so its accuracy is not a
    measure of the same thing across runs."""
    own = [f"run{i + 1}" for i, (_, _, m) in enumerate(runs) if split_of(m) == "validation"]
    if not own:
        return []
    return [
        f"{', '.join(own)}: accuracy read on the run's own validation split, against its "
        "given labels; across runs that differ in labels or samples it is not the same "
        "measure (give the dataset a test split to compare runs)"
    ]


def pr_panels(runs: list[tuple[Path, dict, dict]], top: int = 5) -> list[tuple]:
    """What the precision-recall figure draws (`figures.pr_figure`): the ensemble and the `top`
    detectors by AP, one panel per run with known truth. Reads (and so checks: `read_samples`)
    those runs' samples, before `compare_runs` writes anything."""
    panels = []
    for run_dir, manifest, metrics in runs:
        detectors = metrics.get("detectors")
        if not detectors or detectors.get("suspicion", {}).get("ap") is None:
            continue  # no truth, or no noisy sample to find (every AP undefined)
        samples = read_samples(run_dir)
        scored = [
            n for n in detectors if f"score_{n}" in samples and detectors[n]["ap"] is not None
        ]
        ranked = sorted(scored, key=lambda n: -detectors[n]["ap"])
        names = ["suspicion", *ranked[:top]]
        scores = {
            n: samples["suspicion" if n == "suspicion" else f"score_{n}"].to_numpy() for n in names
        }
        noisy = samples["is_noisy"].to_numpy(dtype=bool)
        panels.append((manifest["run_id"], scores, noisy, {n: detectors[n]["ap"] for n in names}))
    return panels


def write_pr_figure(panels: list[tuple], path: Path) -> bool:
    """Draw `pr_panels` into `path`; False (and nothing written) when no run knows the truth."""
    from auditor.outputs import figures

    if not panels:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(figures.pr_figure(panels))
    return True


def compact_table(detectors: pd.DataFrame, runs: list[tuple[Path, dict, dict]]) -> list[str]:
    """Detector rows x run columns of 'AUROC / AP' ('as <kept>' for a detector whose score was
    dropped as rank-identical to <kept>'s), best mean AP first; runs named as in `legend_lines`."""
    keys = {manifest["run_id"]: f"run{i + 1}" for i, (_, manifest, _) in enumerate(runs)}
    cells = detectors.assign(
        run=detectors["run_id"].map(keys),
        cell=[
            f"{a:.3f} / {p:.3f}"
            if pd.notna(a) and pd.notna(p)
            else f"as {r}"
            if isinstance(r, str)
            else "-"
            for a, p, r in zip(
                detectors["auroc"], detectors["ap"], detectors["ranked_as"], strict=True
            )
        ],
    )
    wide = cells.pivot_table(
        index="detector", columns="run", values="cell", aggfunc="first"
    ).fillna("")
    order = detectors.groupby("detector")["ap"].mean().sort_values(ascending=False).index
    return wide.reindex(order).to_string().splitlines()


def legend_lines(runs: list[tuple[Path, dict, dict]]) -> list[str]:
    """The runs' short names (`run1`, ... in the order given), used by every table and sentence."""
    return ["runs"] + [
        f"  run{i + 1} = {m['run_id']} ({m.get('dataset')}, {label_source(m, met)})"
        for i, (_, m, met) in enumerate(runs)
    ]


def label_source(manifest: dict, metrics: dict) -> str:
    """Where a run's given labels came from: a label file (`--labels`, e.g. a corrected one from
    `audit apply`), a noise file, injected noise and its real rate, or the labels as given."""
    config = manifest.get("config") or {}
    for option, what in (("labels", "labels"), ("noise_file", "noise file")):
        if isinstance(config.get(option), str) and config[option]:
            return f"{what} {Path(config[option]).name}"
    noise = metrics.get("noise") or {}
    kind, rate = noise.get("type"), noise.get("real_rate")
    if kind in (None, "none"):
        return "labels as given, no noise injected"
    return f"{kind} noise injected" + (f", real rate {rate:.3f}" if isinstance(rate, float) else "")


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


def output_stem(out: str | None) -> Path:
    """Where `compare_runs` writes: `--out` an existing folder, or ending in `/`, holds
    compare.csv, compare.parquet, compare-accuracy.csv, compare-pr.png; any other `--out` is a
    file prefix (OUT.csv, ...; a trailing .csv or .parquet is dropped); none: the prefix
    reports/compare/<YYYYmmdd-HHMMSS>. An empty `--out` is refused (it would be the current
    folder)."""
    if out is None:
        return Path("reports") / "compare" / time.strftime("%Y%m%d-%H%M%S")
    stem = named_path(out, "--out")
    if out.endswith(("/", os.sep)) or stem.is_dir():
        return stem / "compare"
    return stem.with_suffix("") if stem.suffix in (".csv", ".parquet") else stem


def output_files(runs: list[tuple[Path, dict, dict]], out: str | None, force: bool) -> list[Path]:
    """The table (.csv), frame (.parquet), accuracy table and figure `compare_runs` writes,
    each checked by `auditor.write_guard.check_out` before any is written (an existing one is
    overwritten only with `force`)."""
    stem = output_stem(out)
    roots = [run_dataset_root(manifest) for _, manifest, _ in runs]
    return [
        check_out(stem.parent / f"{stem.name}{suffix}", dataset_roots=roots, force=force)
        for suffix in (".csv", ".parquet", "-accuracy.csv", "-pr.png")
    ]


def refuse_repeated_runs(runs: list[tuple[Path, dict, dict]]) -> None:
    """Refuse a run given twice: one folder however spelt (`a`, `./a/`, a symlink to it), or a
    copy of it (the same `run_id`), which the tables, keyed by run id, cannot tell apart."""
    seen: dict[str, Path] = {}
    for run_dir, manifest, _ in runs:
        run_id = manifest["run_id"]
        if run_id in seen:
            copy = "" if Path(run_dir).resolve() == seen[run_id].resolve() else ", a copy"
            raise UserError(
                f"run {run_id} is given twice ({seen[run_id]} and {run_dir}{copy}): "
                "name each run once"
            )
        seen[run_id] = Path(run_dir)


def compare_runs(run_dirs: list[Path], out: str | None, *, force: bool = False) -> list[str]:
    """Write the tables and the figure; return the lines to print."""
    runs = [(d, *read_run(d)) for d in run_dirs]
    refuse_repeated_runs(runs)
    panels = pr_panels(runs)
    table, frame, accuracy_file, figure = output_files(runs, out, force)
    detectors, accuracy = detector_table(runs), accuracy_table(runs)
    write_csv(table, detectors)
    write_parquet(frame, pa.Table.from_pandas(detectors, preserve_index=False))
    write_csv(accuracy_file, accuracy)
    drew = write_pr_figure(panels, figure)
    lines = [*legend_lines(runs), ""]
    if len(accuracy):
        lines += [
            "test accuracy"
            if set(accuracy["split"]) == {"test"}
            else "test or validation accuracy",
            accuracy.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
            *validation_caution(runs),
            "",
        ]
        spread = spread_lines(runs)
        lines += [*spread, ""] if spread else []
    if len(detectors):
        lines += ["detectors: AUROC / AP per run"] + compact_table(detectors, runs) + [""]
    else:
        lines += ["no run knows the truth: no detector metrics to compare", ""]
    lines += rank_identical_lines(runs) + [""]
    lines += [
        f"wrote {table}, {frame.name}, {accuracy_file.name}" + (f", {figure.name}" if drew else "")
    ]
    return lines
