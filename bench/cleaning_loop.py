"""The cleaning loop, measured (a script, not a test): audit the demo at 30% noise, let a
simulated annotator review the top-k suspects, apply the decisions, retrain on the corrected
labels, and compare test accuracy before and after with `audit compare`.

The simulated annotator knows the truth, as a person looking at the image would:
  oracle (default): a suspect whose given label is wrong is relabelled to its true class (we
                    count how often that was the tool's suggestion); a right one is kept;
  accept:           every suspect is relabelled to the tool's suggestion, unchecked.
Everything goes through the real CLI (`audit run`, `export`, `apply`, `run --labels`,
`compare`); Debian's Fashion-MNIST files are checked byte-identical afterwards.

    .venv/bin/python bench/cleaning_loop.py [--top K] [--method ce,eac] [--annotator oracle]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
AUDIT = Path(sys.executable).parent / "audit"
FASHION = Path("/usr/share/datasets/fashion-mnist")


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
        out["new_name"] = [class_names[t] if w else "" for t, w in zip(true_label, wrong, strict=True)]  # fmt: skip
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, help="suspects reviewed (default: the ensemble's flags)")
    parser.add_argument("--method", default="ce,eac")
    parser.add_argument("--annotator", choices=("oracle", "accept"), default="oracle")
    parser.add_argument("--out", default=str(REPO / "reports" / "loop"))
    parser.add_argument("run_args", nargs="*", help="extra `audit run` options, after --")
    args = parser.parse_args()
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    before_digests = digests(FASHION)
    common = ["--method", args.method, "--no-report", *args.run_args]

    t = time.perf_counter()
    before = Path(audit("run", "demo", "--noise-rate", "0.3", *common, "--out", str(out / "runs")))
    print(f"audit before cleaning: {before} ({time.perf_counter() - t:.0f} s)")
    manifest = json.loads((before / "manifest.json").read_text())
    class_names = manifest["class_names"]
    samples = pd.read_parquet(before / "samples.parquet")
    top = args.top or max(int(samples["flag_suspicion"].sum()), 1)

    suspects_csv = Path(audit("export", str(before), "--top", str(top), "--out", str(out / "suspects.csv")))  # fmt: skip
    suspects = pd.read_csv(suspects_csv, dtype={"decision": str}, keep_default_na=False)
    decided, counts = annotate(suspects, samples, class_names, args.annotator)
    decisions_csv = out / "decisions.csv"
    decided.to_csv(decisions_csv, index=False)
    corrected = Path(audit("apply", str(before), "--relabels", str(decisions_csv), "--out", str(out / "corrected.csv")))  # fmt: skip

    t = time.perf_counter()
    after = Path(audit("run", "demo", "--labels", str(corrected), *common, "--out", str(out / "runs")))  # fmt: skip
    print(f"retrained on the corrected labels: {after} ({time.perf_counter() - t:.0f} s)")
    compare = subprocess.run([str(AUDIT), "compare", str(before), str(after), "--out", str(out / "compare")],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip

    print(f"\nannotator ({args.annotator}) reviewed the top {top} suspects: {counts}")
    noise_before = float(samples["is_noisy"].mean())
    noise_after = train_noise(corrected, samples, class_names)
    print(f"label noise of the training set: {noise_before:.3f} before, {noise_after:.3f} after")
    print("original labels byte-identical:", digests(FASHION) == before_digests)
    print("\naudit compare (before, after):\n" + compare)
    acc = {
        name: json.loads((run / "metrics.json").read_text())["accuracy"]
        for name, run in (("before", before), ("after", after))
    }
    print("test accuracy, last / last-5 mean:")
    for method in acc["before"]:
        b, a = acc["before"][method], acc["after"][method]
        print(f"  {method}: before {b['last']:.3f} / {b['last5_mean']:.3f}, "
              f"after {a['last']:.3f} / {a['last5_mean']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
