"""End-to-end efficiency of the audit (a script, not a test), measured in one run: detection AP
of one training run's `suspicion` against cleanlab on K-fold cross-fitted probabilities, on the
demo at 30% symmetric noise, with the wall time and peak memory each took.

    A: audit run demo --method ce                 (one training; the ensemble of its detectors)
    B: audit run demo --method ce --folds 4       (the same training plus 4 cross-fitted models;
                                                   cleanlab reads their out-of-sample probabilities)

Compute is measured as wall time and as trained images (epochs x samples seen by every model).

    .venv/bin/python bench/efficiency.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AUDIT = Path(sys.executable).parent / "audit"
# peak resident memory of a command, read by a wrapper from its own children's rusage
PEAK = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(r.returncode)"
)


def run(out: Path, *args: str) -> tuple[Path, dict, float, float]:
    """(run folder, metrics, seconds, peak resident MB) of one `audit run demo`."""
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK,
            str(AUDIT),
            "run",
            "demo",
            "--no-report",
            "--out",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-2000:])
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    peak_mb = int(result.stderr.strip().splitlines()[-1]) / 1024
    return run_dir, json.loads((run_dir / "metrics.json").read_text()), seconds, peak_mb


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a_dir, a, a_s, a_mb = run(Path(tmp), "--method", "ce")
        b_dir, b, b_s, b_mb = run(Path(tmp), "--method", "ce", "--folds", "4")
        manifest = json.loads((a_dir / "manifest.json").read_text())
    n, epochs = manifest["n_train"], manifest["config"]["epochs"]
    a_images, b_images = epochs * n, epochs * n + 4 * epochs * n * 3 // 4
    ours, base = (
        a["detectors"]["suspicion"],
        b["detectors"]["ce_normalized_margin"],
    )  # cleanlab's ranking
    print(f"demo, 30% symmetric noise, {n} training images, {epochs} epochs, CPU")
    print(
        f"A one training   suspicion AP {ours['ap']:.3f} AUROC {ours['auroc']:.3f} | "
        f"{a_s:6.0f} s, {a_images:,} trained images, peak {a_mb:,.0f} MB"
    )
    print(
        f"B 4-fold cleanlab  cleanlab AP {base['ap']:.3f} AUROC {base['auroc']:.3f} | "
        f"{b_s:6.0f} s, {b_images:,} trained images, peak {b_mb:,.0f} MB"
    )
    print(
        f"A / B: AP {ours['ap'] / base['ap']:.3f}x, wall time {a_s / b_s:.2f}, "
        f"trained images {a_images / b_images:.2f}"
    )


if __name__ == "__main__":
    main()
