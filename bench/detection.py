"""Detection benchmark (a script, not a test): the demo dataset under several noise settings.

For each setting it runs `audit run demo --method ce,eac` (one training per method; the
ensemble `suspicion` and every detector) and, as the baseline, `audit run demo --method ce
--folds 4` (cleanlab's find_label_issues on 4-fold cross-fitted probabilities), then prints a
table of AP / AUROC and wall time and, with --readme, writes it into README.md between the
markers `<!-- detection-benchmark -->` and `<!-- /detection-benchmark -->`.

    .venv/bin/python bench/detection.py --readme
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUDIT = Path(sys.executable).parent / "audit"
SETTINGS = [
    ("symmetric", 0.1),
    ("symmetric", 0.2),
    ("symmetric", 0.3),
    ("pair", 0.3),
    ("instance", 0.3),
]
MARKERS = ("<!-- detection-benchmark -->", "<!-- /detection-benchmark -->")


def audit_run(out: Path, *args: str) -> tuple[dict, float]:
    start = time.perf_counter()
    result = subprocess.run([str(AUDIT), "run", "demo", "--out", str(out), *args],
                            capture_output=True, text=True, check=True)  # fmt: skip
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    return json.loads((run_dir / "metrics.json").read_text()), time.perf_counter() - start


def best_single(detectors: dict) -> tuple[str, dict]:
    return max(
        ((n, m) for n, m in detectors.items() if n != "suspicion"), key=lambda nm: nm[1]["ap"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "reports" / "bench"))
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    header = ("| noise | real rate | suspicion AP / AUROC | best single detector (AP) | cleanlab, 4-fold cross-fitted (AP / AUROC) "
              "| ensemble >= best single | wall: ce+eac / 4-fold ce |")  # fmt: skip
    lines = [header, "|" + "---|" * 7]
    for kind, rate in SETTINGS:
        run, run_s = audit_run(
            Path(args.out), "--method", "ce,eac", "--noise-type", kind, "--noise-rate", str(rate)
        )
        base, base_s = audit_run(
            Path(args.out),
            "--method",
            "ce",
            "--folds",
            "4",
            "--noise-type",
            kind,
            "--noise-rate",
            str(rate),
        )
        det, cl = run["detectors"], base["detectors"]["ce_cleanlab"]
        name, single = best_single(det)
        s = det["suspicion"]
        lines.append(
            f"| {kind} {rate:.0%} | {run['noise']['real_rate']:.3f} | {s['ap']:.3f} / {s['auroc']:.3f} "
            f"| {name} ({single['ap']:.3f}) | {cl['ap']:.3f} / {cl['auroc']:.3f} "
            f"| {'yes' if s['ap'] >= single['ap'] else 'no'} | {run_s:.0f} s / {base_s:.0f} s |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.readme:
        readme = REPO / "README.md"
        text = readme.read_text()
        block = f"{MARKERS[0]}\n{table}\n{MARKERS[1]}"
        text = re.sub(
            re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), lambda _: block, text, flags=re.S
        )
        readme.write_text(text)


if __name__ == "__main__":
    main()
