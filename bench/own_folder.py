"""Own-folder benchmark (a script, not a test): a user's own image folder, with no test split and
30% label noise. Does the default `suspicion` reach the best single detector's AP (within 0.01)?

It writes two real image folders, one sub-folder of grayscale PNGs per class and no test/
folder, from data that ships offline: scikit-learn's digits (1,797 images of 8x8 px) and a
class-stratified subset of Fashion-MNIST's training images (28x28 px) from Debian's package
(`--fashion-n`, default 3,000). Cells: dataset {digits, fashion} x noise {symmetric, instance}
at 30% x setting {before: no validation split, random flips, 64 px, as `audit run imagefolder`
trained before issue 19; now: the defaults at 10 epochs; length: the defaults, no --epochs, so
the tool chooses the training length (issue 28)}. Each cell is one real `audit run imagefolder` in a
subprocess (`--seed 0 --no-report`), its run folder under `<work>/runs/<cell>/` and its image
cache under `<work>/cache/`. Per cell it reports: suspicion AP / AUROC, the best single detector
(AP), the gap between them, the ensemble's members and trusted methods, the image size and
the training seconds, then every decision the run printed.

    .venv/bin/python bench/own_folder.py                        # every cell: about 30 min on an
                                                                # idle 2-core CPU, 70 min shared
    .venv/bin/python bench/own_folder.py --cells digits-symmetric-now --epochs 1
    .venv/bin/python bench/own_folder.py --table-only --readme  # from the existing run folders
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from readme_block import write_block  # bench/, beside this script

from auditor.api import open_run
from auditor.datasets.fashion_mnist import find_file, read_idx
from auditor.datasets.table import stratified_subset

AUDIT = Path(sys.executable).parent / "audit"
FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)
MARKERS = ("<!-- own-folder-benchmark -->", "<!-- /own-folder-benchmark -->")
DATASETS = ("digits", "fashion")
NOISES = ("symmetric", "instance")
NOISE_RATE = 0.3
TEN = ("--epochs", "10")  # the training length of every setting before issue 28
SETTINGS = {  # the `audit run` options of each setting, beyond the cell's common ones
    "before": ("--validation", "0", "--flip", "--image-size", "64", *TEN),  # before issue 19
    "now": TEN,  # the defaults, 10 epochs
    # what each of the three costs, one at a time, over the defaults
    "trust-all": ("--validation", "0", *TEN),  # no accuracy to read: every method trusted
    "flip": ("--flip", *TEN),  # flips (and EAC, which needs them) whatever the data
    "64px": ("--image-size", "64", *TEN),  # the imagefolder default size, upscaled
    "length": (),  # the defaults: no --epochs, trains until the validation accuracy stops rising
}
TOLERANCE = 0.01  # suspicion "reaches" the best single detector within this much AP


def cell_name(dataset: str, noise: str, setting: str) -> str:
    return f"{dataset}-{noise}-{setting}"


CELLS = [cell_name(*c) for c in itertools.product(DATASETS, NOISES, SETTINGS)]


def digits_images() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's digits: (uint8 [1797, 8, 8] with 0..16 scaled to 0..255, labels, class
    names)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return pixels, digits.target.astype(np.int64), [str(c) for c in range(10)]


def fashion_images(n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A class-stratified subset of about `n` Fashion-MNIST training images (seed 0): (uint8
    [n, 28, 28], labels, class names)."""
    images = read_idx(find_file(FASHION, "train-images-idx3-ubyte"))
    labels = read_idx(find_file(FASHION, "train-labels-idx1-ubyte")).astype(np.int64)
    index = stratified_subset(labels, n, seed=0)
    return images[index], labels[index], list(FASHION_CLASSES)


def write_folder(folder: Path, pixels: np.ndarray, labels: np.ndarray, classes: list[str]) -> Path:
    """`folder/<class>/<row>.png` for every image, no test/ folder; written beside it first and
    renamed, so an existing `folder` is complete and is reused as it is."""
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for name in classes:
        (partial / name).mkdir(parents=True)
    for row, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        Image.fromarray(image).save(partial / classes[label] / f"{row:05d}.png")
    partial.rename(folder)
    return folder


def dataset_folder(dataset: str, work: Path, fashion_n: int) -> Path:
    """The image folder of `dataset` under `work/folders/`, written when missing."""
    if dataset == "digits":
        return write_folder(work / "folders" / "digits", *digits_images())
    return write_folder(work / "folders" / f"fashion-{fashion_n}", *fashion_images(fashion_n))


def run_cell(cell: str, root: Path, work: Path, epochs: int | None) -> Path:
    """One `audit run imagefolder` of the cell; its run folder (the CLI's last line), beside
    which the lines it printed on stderr are kept (`log_path`)."""
    _, noise, setting = cell.split("-", 2)
    args = [
        "run",
        "imagefolder",
        "--root",
        str(root),
        "--noise-rate",
        str(NOISE_RATE),
        "--noise-type",
        noise,
        "--out",
        str(work / "runs" / cell),
        "--no-report",
        "--seed",
        "0",
        *SETTINGS[setting],
        *(["--epochs", str(epochs)] if epochs is not None else []),
    ]
    env = os.environ | {"AUDIT_CACHE_DIR": str(work / "cache")}
    result = subprocess.run([str(AUDIT), *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"audit {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    log_path(run_dir).write_text(result.stderr)
    return run_dir


def log_path(run_dir: Path) -> Path:
    """Where the stderr of the run that wrote `run_dir` is kept: beside it, not in it."""
    return run_dir.parent / f"{run_dir.name}.stderr.txt"


def latest_run(cell: str, work: Path) -> Path | None:
    """The cell's most recently finished complete run folder, or None."""
    complete = [
        path.parent
        for path in (work / "runs" / cell).glob("*/*/manifest.json")
        if json.loads(path.read_text()).get("status") == "complete"
    ]
    return max(complete, key=lambda p: (p / "manifest.json").stat().st_mtime, default=None)


def decision_lines(run_dir: Path, metrics: dict) -> list[str]:
    """What the run decided, in its own words: the `audit: ` lines it printed (the working size,
    the flips, the methods, the ensemble), or the ensemble's decisions (metrics.json) when its
    stderr was not kept."""
    if log_path(run_dir).exists():
        lines = log_path(run_dir).read_text().splitlines()
        return [line.removeprefix("audit: ") for line in lines if line.startswith("audit: ")]
    return metrics["ensemble"]["decisions"]


def read_cell(cell: str, run_dir: Path) -> dict:
    """What the table shows of one cell's run folder, read through the public API (`open_run`:
    every file checked)."""
    run = open_run(run_dir)
    manifest, metrics = run.manifest, run.metrics
    detectors = metrics["detectors"]
    singles = {n: d["ap"] for n, d in detectors.items() if n != "suspicion" and d["ap"] is not None}
    best = max(singles, key=singles.get)
    decisions = decision_lines(run_dir, metrics)
    config, timings = manifest["config"], manifest["timings_s"]
    return {
        "cell": cell,
        "run": str(run_dir),
        "ap": detectors["suspicion"]["ap"],
        "auroc": detectors["suspicion"]["auroc"],
        "best": best,
        "best_ap": singles[best],
        "methods": list(metrics["accuracy"]),
        "members": metrics["ensemble"]["members"],
        "trusted": next((d for d in decisions if d.startswith("trusts")), "-"),
        "decisions": decisions,
        "image_size": config["image_size"],
        "flip": {True: "flips", False: "no flips"}.get(config.get("flip"), "-"),
        "epochs": config["epochs"],
        "n_train": manifest["n_train"],
        "held_out": (manifest.get("validation") or {}).get("n", 0),
        "trained_only": trained_only(run.samples, manifest),
        "train_s": sum(v for k, v in timings.items() if k.startswith("train_")),
        "total_s": timings["total"],
    }


def trained_only(samples: pd.DataFrame, manifest: dict) -> tuple[float, str, float]:
    """(suspicion AP, the best single detector, its AP) over the trained samples alone: a
    single detector ranks the held-out samples, read by a model that never trained on them,
    together with the others (the ensemble ranks each group apart), which could only lower its
    AP over all samples; this is the comparison without them."""
    from sklearn.metrics import average_precision_score

    held = set((manifest.get("validation") or {}).get("sample_ids") or [])
    kept = samples[~samples["sample_id"].isin(held)]
    noisy = kept["is_noisy"].to_numpy(dtype=bool)
    scores = {
        c.removeprefix("score_"): kept[c].to_numpy(dtype=float)
        for c in kept.columns
        if c.startswith("score_")
    }
    aps = {n: average_precision_score(noisy, s) for n, s in scores.items() if np.isfinite(s).all()}
    best = max(aps, key=aps.get)
    return average_precision_score(noisy, kept["suspicion"]), best, aps[best]


def ensemble_methods(row: dict) -> list[str]:
    """The methods whose detectors are the ensemble's members (the trusted ones), in order."""
    return list(dict.fromkeys(m.split("_")[0] for m in row["members"]))


def table(rows: list[dict]) -> str:
    """Markdown: one row per cell, then how many cells reach the best single detector."""
    lines = [
        "| cell | suspicion AP / AUROC | best single detector (AP) | gap | reaches "
        "| trained samples only: suspicion AP, best single (AP) | trained, in the ensemble "
        "| images, held out | size, flips | training, total |",
        "|" + "---|" * 10,
    ]
    for r in rows:
        gap = r["ap"] - r["best_ap"]
        lines.append(
            f"| {r['cell']} | {r['ap']:.3f} / {r['auroc']:.3f} | {r['best']} ({r['best_ap']:.3f}) "
            f"| {gap:+.3f} | {'yes' if gap >= -TOLERANCE else 'no'} "
            f"| {r['trained_only'][0]:.3f}, {r['trained_only'][1]} ({r['trained_only'][2]:.3f}) "
            f"| {', '.join(r['methods'])}; {', '.join(ensemble_methods(r))} "
            f"| {r['n_train']:,}, {r['held_out']:,} | {r['image_size']} px, {r['flip']} "
            f"| {r['train_s']:.0f} s, {r['total_s']:.0f} s |"
        )
    counts = []
    for setting in SETTINGS:
        cells = [r for r in rows if r["cell"].split("-", 2)[2] == setting]
        reached = sum(r["ap"] - r["best_ap"] >= -TOLERANCE for r in cells)
        counts += [f"{setting} {reached} of {len(cells)}"] if cells else []
    lines.append(
        f"\nsuspicion reaches the best single detector's AP (within {TOLERANCE}), "
        f"cells per setting: {'; '.join(counts)}."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/own-folder-bench", help="image folders and runs")
    parser.add_argument("--cells", nargs="+", choices=CELLS, default=CELLS)
    parser.add_argument("--fashion-n", type=int, default=3000, help="Fashion-MNIST images")
    parser.add_argument("--epochs", type=int, help="passed to audit run (default: the setting's)")
    parser.add_argument("--table-only", action="store_true", help="no training: existing runs")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for cell in args.cells:
            root = dataset_folder(cell.split("-")[0], work, args.fashion_n)
            start = time.perf_counter()
            run_dir = run_cell(cell, root, work, args.epochs)
            print(f"{cell}: {time.perf_counter() - start:.0f} s, {run_dir}", flush=True)
    runs = {cell: latest_run(cell, work) for cell in args.cells}
    rows = [read_cell(cell, run) for cell, run in runs.items() if run is not None]
    text = table(rows)
    print(text)
    for r in rows:
        print(f"\n{r['cell']} ({r['run']}):")
        print("\n".join(f"  {line}" for line in r["decisions"]))
    (work / "table.json").write_text(json.dumps(rows, indent=1))
    if args.readme:
        write_block(MARKERS, text)


if __name__ == "__main__":
    main()
