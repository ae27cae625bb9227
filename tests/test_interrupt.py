"""Interruption through the real CLI: SIGTERM / Ctrl-C / SIGKILL mid-training, then
`audit run --resume`, whose samples.parquet equals an uninterrupted run's; runs never share a
folder and a finished or busy run is not resumed."""

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import AUDIT, assert_no_traceback, run_cli
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow
RUN = [
    "run",
    "demo",
    "--limit",
    "300",
    "--epochs",
    "4",
    "--method",
    "ce,scn",
    "--no-report",
    "--image-size",
    "28",
]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The same run, never interrupted."""
    return last_line_dir(run_cli(*RUN, "--out", str(tmp_path_factory.mktemp("straight"))))


def interrupt(
    out: Path, sig: int | tuple[int, ...], run: list[str] = RUN, after: str = "scn"
) -> tuple[Path, int]:
    """Start the run, send `sig` (or each signal of a tuple, 50 ms apart) once method `after`
    has finished an epoch; (folder, exit)."""
    process = subprocess.Popen(
        [str(AUDIT), *run, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not list(out.glob(f"demo/*/checkpoints/{after}.pt")):
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.1)
    for k, each in enumerate(sig if isinstance(sig, tuple) else (sig,)):
        time.sleep(0.05 * (k > 0))
        process.send_signal(each)
    _, stderr = process.communicate(timeout=120)
    assert_no_traceback(stderr, run)
    (run_dir,) = out.glob("demo/*")
    return run_dir, process.returncode


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "manifest.json").read_text())["status"]


# SIGTERM then SIGINT 50 ms apart: the second lands in the shutdown the first began (it printed
# tqdm's `__del__` traceback); SIGTERM alone is test_every_method_resumes_to_the_same_samples's
@pytest.mark.parametrize(
    "sig",
    [(signal.SIGTERM, signal.SIGINT), signal.SIGINT, signal.SIGKILL],
    ids=["SIGTERM-then-SIGINT", "SIGINT", "SIGKILL"],
)
def test_interrupted_run_resumes_to_the_same_samples(tmp_path, straight, sig):
    run_dir, code = interrupt(tmp_path, sig)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL and status(run_dir) == "running"
    else:
        assert code == 130 and status(run_dir) == "interrupted"
    assert not (run_dir / "samples.parquet").exists()  # nothing that looks finished
    result = run_cli("run", "--resume", str(run_dir))
    assert last_line_dir(result) == run_dir
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["resumed"]) == 1
    assert not (run_dir / "checkpoints").exists()
    for name in ("samples.parquet", "dynamics.parquet"):
        assert pd.read_parquet(run_dir / name).equals(pd.read_parquet(straight / name)), name


@pytest.mark.parametrize("method", ["eac", "rul", "gsmc"])  # ce and scn: the test above
def test_every_method_resumes_to_the_same_samples(tmp_path, method):
    """A method's whole state is in its checkpoint: GSMC's EMA step count, RUL's heads and
    their optimiser group, EAC's views."""
    run = [*RUN[: RUN.index("--method") + 1], method, *RUN[RUN.index("--method") + 2 :]]
    straight = last_line_dir(run_cli(*run, "--out", str(tmp_path / "straight")))
    run_dir, code = interrupt(tmp_path / "stopped", signal.SIGTERM, run, after=method)
    assert code == 130 and status(run_dir) == "interrupted"
    assert last_line_dir(run_cli("run", "--resume", str(run_dir))) == run_dir
    for name in ("samples.parquet", "dynamics.parquet"):
        assert pd.read_parquet(run_dir / name).equals(pd.read_parquet(straight / name)), name


def test_resume_refusals_exit_2(tmp_path, straight):
    result = run_cli("run", "--resume", str(straight))
    assert result.returncode == 2 and "already complete" in result.stderr
    result = run_cli("run", "--resume", str(straight), "--epochs", "3")
    assert result.returncode == 2 and "drop --epochs" in result.stderr
    result = run_cli("run", "--resume", str(tmp_path))
    assert result.returncode == 2 and "no manifest.json" in result.stderr

    busy = tmp_path / "busy"
    busy.mkdir()
    manifest = json.loads((straight / "manifest.json").read_text()) | {"status": "running"}
    (busy / "manifest.json").write_text(json.dumps(manifest))
    fd = os.open(busy / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a live audit process holds it
    try:
        result = run_cli("run", "--resume", str(busy))
    finally:
        os.close(fd)
    assert result.returncode == 2 and "being run by another audit process" in result.stderr


def test_two_runs_at_once_never_share_a_folder(tmp_path):
    args = [
        str(AUDIT),
        "run",
        "demo",
        "--limit",
        "100",
        "--epochs",
        "1",
        "--method",
        "ce",
        "--no-report",
        "--out",
        str(tmp_path),
    ]
    processes = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    folders = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
        assert_no_traceback(stderr, args)
        folders.append(stdout.strip().splitlines()[-1])
    assert len(set(folders)) == 3
    assert all(status(Path(f)) == "complete" for f in folders)


def test_a_failure_while_writing_leaves_nothing_that_looks_complete(tmp_path, straight):
    run_dir, code = interrupt(tmp_path, signal.SIGTERM)
    assert code == 130
    (run_dir / "samples.parquet").mkdir()  # the first output file cannot be renamed into place
    result = run_cli("run", "--resume", str(run_dir))
    # a folder where the run writes a file is the machine's state, said in one sentence
    assert result.returncode == 2 and "samples.parquet: it is a folder where" in result.stderr
    assert status(run_dir) == "failed"
    assert json.loads((run_dir / "manifest.json").read_text())["error"].startswith(
        "IsADirectoryError"
    )
    leftovers = sorted(p.name for p in run_dir.iterdir())
    assert leftovers == [".lock", "checkpoints", "manifest.json", "samples.parquet"], leftovers
    assert not any((run_dir / "samples.parquet").iterdir())  # no temporary file left behind
    (run_dir / "samples.parquet").rmdir()
    assert last_line_dir(run_cli("run", "--resume", str(run_dir))) == run_dir
    assert status(run_dir) == "complete"
    assert pd.read_parquet(run_dir / "samples.parquet").equals(
        pd.read_parquet(straight / "samples.parquet")
    )
