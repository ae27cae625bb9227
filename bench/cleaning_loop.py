"""The cleaning loop, measured (a script, not a test): audit the demo at 30% noise, let a
simulated annotator review the top-k suspects, apply the decisions, retrain on the corrected
labels, and compare test accuracy before and after with `audit compare`; once per seed (the
noise, the split of work and the training all follow `--seed`), so that the retrain gain is
reported with its run-to-run spread: mean and sample standard deviation over the seeds.

The simulated annotator knows the truth, as a person looking at the image would:
  oracle (default): a suspect whose given label is wrong is relabelled to its true class (we
                    count how often that was the tool's suggestion); a right one is kept;
  accept:           every suspect is relabelled to the tool's suggestion, unchecked.
Everything goes through the real CLI (`audit run`, `export`, `apply`, `run --labels`,
`compare`), and the run folders are read back as a user reads them, through the public API
(`auditor.api.open_run`, which checks every file); Debian's Fashion-MNIST files are checked
byte-identical afterwards.

    .venv/bin/python bench/cleaning_loop.py [--seeds 0,1,2] [--top K] [--method ce,eac]
                                            [--annotator oracle] [--readme]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from readme_block import write_block  # bench/, beside this script

from auditor.api import open_run

REPO = Path(__file__).resolve().parents[1]
AUDIT = Path(sys.executable).parent / "audit"
FASHION = Path("/usr/share/datasets/fashion-mnist")
MARKERS = ("<!-- cleaning-loop-benchmark -->", "<!-- /cleaning-loop-benchmark -->")


def audit(*args: str) -> str:
    """Run the CLI; its last stdout line (a run folder or a file)."""
    result = subprocess.run([str(AUDIT), *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"audit {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def annotate(suspects: pd.DataFrame, samples: pd.DataFrame, class_names: list[str], mode: str):
    """Fill the `decision` (and `new_name`) of every suspect; returns the frame and counts."""
    truth = samples.set_index("sample_id")["true_label"]
    true_label = truth[suspects["sample_id"]].to_numpy()
    wrong = suspects["given_label"].to_numpy() != true_label
    suggestion_right = suspects["suggested_label"].to_numpy() == true_label
    out = suspects.copy()
    if mode == "oracle":
        out["decision"] = ["relabel" if w else "keep" for w in wrong]
        out["new_name"] = [
            class_names[t] if w else "" for t, w in zip(true_label, wrong, strict=True)
        ]
    else:
        out["decision"] = "relabel"
        out["new_name"] = ""
    counts = {
        "reviewed": len(out),
        "truly_mislabelled": int(wrong.sum()),
        "suggestion_right_on_mislabelled": int((wrong & suggestion_right).sum()),
        "relabelled": int((out["decision"] == "relabel").sum()),
        "kept": int((out["decision"] == "keep").sum()),
    }
    return out, counts


def train_noise(labels_csv: Path, samples: pd.DataFrame, class_names: list[str]) -> float:
    """Fraction of the audited training samples whose label in `labels_csv` is wrong."""
    corrected = pd.read_csv(labels_csv, dtype=str, keep_default_na=False).set_index("sample_id")
    lookup = {n: i for i, n in enumerate(class_names)}
    audited = samples.set_index("sample_id")
    labels = corrected.loc[audited.index, "label"].map(lookup)
    return float((labels.to_numpy() != audited["true_label"].to_numpy()).mean())


def one_loop(seed: int, args: argparse.Namespace, out: Path) -> dict:
    """Audit, review (simulated), apply and retrain once with `--seed seed`; returns what was
    measured (test accuracy per method before / after, label noise before / after, counts)."""
    out.mkdir(parents=True)
    common = ["--method", args.method, "--no-report", "--seed", str(seed), *args.run_args]
    t = time.perf_counter()
    before = Path(audit("run", "demo", "--noise-rate", "0.3", *common, "--out", str(out / "runs")))
    seconds = time.perf_counter() - t
    audited = open_run(before)
    class_names = audited.manifest["class_names"]
    samples = audited.samples
    top = args.top or max(int(samples["flag_suspicion"].sum()), 1)
    suspects_csv = Path(
        audit("export", str(before), "--top", str(top), "--out", str(out / "suspects.csv"))
    )
    suspects = pd.read_csv(suspects_csv, dtype={"decision": str}, keep_default_na=False)
    decided, counts = annotate(suspects, samples, class_names, args.annotator)
    decisions_csv = out / "decisions.csv"
    decided.to_csv(decisions_csv, index=False)
    corrected = Path(
        audit(
            "apply",
            str(before),
            "--relabels",
            str(decisions_csv),
            "--out",
            str(out / "corrected.csv"),
        )
    )
    after = Path(
        audit("run", "demo", "--labels", str(corrected), *common, "--out", str(out / "runs"))
    )
    compare = subprocess.run(
        [str(AUDIT), "compare", str(before), str(after), "--out", str(out / "compare")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    accuracy = {"before": audited.accuracy, "after": open_run(after).accuracy}
    return {
        "seed": seed,
        "seconds_per_audit": seconds,
        "top": top,
        "counts": counts,
        "noise_before": float(samples["is_noisy"].mean()),
        "noise_after": train_noise(corrected, samples, class_names),
        "accuracy": accuracy,
        "compare": compare,
    }


def spread(values: list[float]) -> str:
    """'mean ± sample std' (ddof = 1) of per-seed values."""
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def table(loops: list[dict], methods: list[str]) -> str:
    """Markdown: one row per seed, then the mean ± std over seeds, of the training-label noise
    and each method's last-5-epoch mean test accuracy before, after and the gain."""
    head = "| seed | reviewed | label noise before -> after | " + " | ".join(
        f"{m} before | {m} after | {m} gain" for m in methods
    )
    lines = [head + " |", "|" + "---|" * (3 + 3 * len(methods))]
    gains: dict[str, list[float]] = {m: [] for m in methods}
    for loop in loops:
        cells = [
            str(loop["seed"]),
            f"{loop['top']:,}",
            f"{loop['noise_before']:.3f} -> {loop['noise_after']:.3f}",
        ]
        for m in methods:
            b = loop["accuracy"]["before"][m]["last5_mean"]
            a = loop["accuracy"]["after"][m]["last5_mean"]
            gains[m].append(a - b)
            cells += [f"{b:.3f}", f"{a:.3f}", f"{a - b:+.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    summary = [f"mean ± std ({len(loops)} seeds)", "", ""]
    for m in methods:
        summary += [
            spread([loop["accuracy"]["before"][m]["last5_mean"] for loop in loops]),
            spread([loop["accuracy"]["after"][m]["last5_mean"] for loop in loops]),
            spread(gains[m]),
        ]
    lines.append("| " + " | ".join(summary) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--top", type=int, help="suspects reviewed (default: the ensemble's flags)")
    parser.add_argument("--method", default="ce,eac")
    parser.add_argument("--annotator", choices=("oracle", "accept"), default="oracle")
    parser.add_argument("--out", default=str(REPO / "reports" / "loop"))
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("run_args", nargs="*", help="extra `audit run` options, after --")
    args = parser.parse_args()
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    before_digests = digests(FASHION)
    seeds = [int(s) for s in args.seeds.split(",")]
    t = time.perf_counter()
    loops = []
    for seed in seeds:
        loops.append(one_loop(seed, args, out / f"seed{seed}"))
        loop = loops[-1]
        print(
            f"seed {seed}: reviewed the top {loop['top']}: {loop['counts']}; label noise "
            f"{loop['noise_before']:.3f} -> {loop['noise_after']:.3f}; "
            f"{loop['seconds_per_audit']:.0f} s per audit",
            flush=True,
        )
        print(loop["compare"], flush=True)
    (out / "loops.json").write_text(json.dumps(loops, indent=1, default=str))
    methods = list(loops[0]["accuracy"]["before"])
    text = table(loops, methods)
    identical = digests(FASHION) == before_digests
    print(
        f"\nannotator: {args.annotator}; {len(seeds)} seeds in {time.perf_counter() - t:.0f} s; "
        f"original labels byte-identical: {identical}\n"
    )
    print(text)
    if args.readme:
        write_block(MARKERS, text)


if __name__ == "__main__":
    main()
