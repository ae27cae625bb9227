"""Shared by the hostile-input tests: what a refusal must look like, and a digest of every file
under a folder so a test can assert that nothing outside the intended output changed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import REPO, assert_no_traceback

QUICK = ["--method", "ce", "--epochs", "1", "--image-size", "16", "--no-report"]


def refused(result, *needles: str, out: Path | None = None) -> None:
    """`result` (a finished `audit` subprocess) exited 2, printed no Python traceback, its stderr
    names every needle, and no run folder was left under `out`."""
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    if out is not None:
        assert not out.exists() or not any(out.rglob("manifest.json"))  # no run folder


def digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256 of its bytes, or 'dir' / 'link -> target'} for everything under
    `folder`: equal digests before and after a command mean it changed nothing there."""
    found: dict[str, str] = {}
    for path in sorted(Path(folder).rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = f"link -> {path.readlink()}"
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def images(root: Path, n: int = 8) -> None:
    """`n` distinct 16x16 PNGs under root/imgs/0.png ..."""
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((16, 16, 3), 20 * i % 256, np.uint8)).save(
            root / "imgs" / f"{i}.png"
        )


def csv_dataset(base: Path, n: int = 12) -> tuple[Path, dict[str, str]]:
    """A csv dataset `mine` of `n` images of two classes (cat, dog alternating) under base/data,
    registered in base/datasets.yaml; (its root, the environment naming that registry)."""
    root = base / "data"
    images(root, n)
    rows = [f"imgs/{i}.png,{('cat', 'dog')[i % 2]}" for i in range(n)]
    (root / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    registry = base / "datasets.yaml"
    registry.write_text(f"mine:\n  kind: csv\n  root: {root}\n")
    return root, {"AUDIT_DATASETS": str(registry)}


# One Python process running many `audit` commands through the console script's own entry point
# (`auditor.cli.main`), each with its own environment and folder: dozens of refusals for the
# start-up cost of one (`run_batch`).
BATCH = """
import contextlib, io, json, os, sys, traceback
from auditor.cli import main
home, base = os.getcwd(), dict(os.environ)
results = []
for case in json.load(sys.stdin):
    os.environ.clear()
    os.environ.update(base | case["env"])
    for name in case["unset"]:
        os.environ.pop(name, None)
    os.chdir(case["cwd"] or home)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(case["argv"])
        except SystemExit as stop:
            code = stop.code
        except BaseException:
            code = "raised"
            err.write(traceback.format_exc())
    results.append({"code": code, "stderr": err.getvalue()})
print(json.dumps(results))
"""


@dataclass(frozen=True)
class Case:
    """One command of a batch: its words, the environment it adds (and `unset`), its folder."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    cwd: Path | None = None


@dataclass(frozen=True)
class Ran:
    """What one command of a batch did, as `refused` reads a finished subprocess."""

    returncode: int | str
    stderr: str


def run_batch(cases: list[Case], env: dict | None = None, prefix: tuple[str, ...] = ()):
    """Run every case in one `python` subprocess (started through `prefix`, e.g. `setpriv`),
    in order; each case's result, checked for a traceback or an unexpected error as every
    `audit` call of the suite is (`tests.conftest.assert_no_traceback`)."""
    payload = [
        {"argv": c.argv, "env": c.env, "unset": list(c.unset), "cwd": c.cwd and str(c.cwd)}
        for c in cases
    ]
    process = subprocess.run(
        [*prefix, sys.executable, "-c", BATCH],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=os.environ | (env or {}),
        cwd=REPO,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    results = [Ran(r["code"], r["stderr"]) for r in json.loads(process.stdout.splitlines()[-1])]
    for case, result in zip(cases, results, strict=True):
        assert_no_traceback(result.stderr, " ".join(case.argv))
    return results
