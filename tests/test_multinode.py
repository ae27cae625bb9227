"""Past one machine: two torchrun nodes of one process each, started as two launchers on
127.0.0.1 (static rendezvous on a free port), each with its own AUDIT_CACHE_DIR and its own
--out, as on two machines. Node 0's process is rank 0: it alone writes the run folder, under its
own --out; node 1 trains its share, writes nothing and prints nothing. The run records every
sample once per epoch and equals the same run as two processes on one machine (--nproc 2)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.test_cli_e2e import last_line_dir
from tests.test_distributed import assert_every_sample_recorded_once, straight  # noqa: F401
from tests.test_interrupt import RUN

pytestmark = pytest.mark.slow
NODES = 2
TIMEOUT = 300  # seconds for the whole run: a rendezvous that never completes fails the test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_command(node: int, port: int, args: list[str]) -> list[str]:
    """The command a user types on machine `node` (torchrun is `python -m torch.distributed.run`).
    The static rendezvous makes --node-rank 0 rank 0; c10d would ignore --node-rank."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={NODES}",
        f"--node-rank={node}",
        "--nproc-per-node=1",
        "--rdzv-backend=static",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        "-m",
        "auditor",
        *args,
    ]


def run_nodes(base: Path, commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Start one launcher per command at once, node k with AUDIT_CACHE_DIR=base/cache<k>, each in
    its own process group; wait for all, within TIMEOUT seconds in all. Every launcher still
    running when the wait fails (timeout, or anything else) is killed with its processes."""
    launchers, logs = [], []
    try:
        for node, command in enumerate(commands):
            out, err = base / f"node{node}.stdout", base / f"node{node}.stderr"
            logs.append((out, err))
            with open(out, "w") as stdout, open(err, "w") as stderr:
                launchers.append(
                    subprocess.Popen(
                        command,
                        cwd=REPO,
                        stdout=stdout,
                        stderr=stderr,
                        stdin=subprocess.DEVNULL,
                        env=os.environ
                        | {
                            "AUDIT_CACHE_DIR": str(base / f"cache{node}"),
                            # what torchrun gives each of --nproc 2's processes
                            "OMP_NUM_THREADS": "1",
                        },
                        start_new_session=True,
                    )
                )
        deadline = time.time() + TIMEOUT
        for launcher in launchers:
            launcher.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"the nodes did not finish within {TIMEOUT} s:\n"
            + tails([e.read_text() for _o, e in logs])
        )
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
    return [
        subprocess.CompletedProcess(c, p.returncode, o.read_text(), e.read_text())
        for c, p, (o, e) in zip(commands, launchers, logs, strict=True)
    ]


def tails(stderrs: list[str]) -> str:
    return "\n".join(f"--- node {k}'s stderr:\n{text[-2000:]}" for k, text in enumerate(stderrs))


def files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def check_two_node_run(results: list[subprocess.CompletedProcess], outs: list[Path]) -> Path:
    """Both launchers exited 0; node 0 printed its run folder, under its own --out, the only one;
    node 1 printed nothing and wrote nothing under its --out; every sample recorded once per
    epoch by the two processes. Returns the run folder."""
    codes = [result.returncode for result in results]
    assert codes == [0] * NODES, f"exit codes {codes}\n" + tails([r.stderr for r in results])
    run_dir = last_line_dir(results[0])
    assert run_dir.parent.parent == outs[0] and [p.name for p in (outs[0] / "demo").iterdir()] == [
        run_dir.name
    ]
    assert results[1].stdout == ""
    assert files_under(outs[1]) == []
    assert_every_sample_recorded_once(run_dir, processes=NODES)
    return run_dir


def test_two_nodes_record_every_sample_once_and_only_node_0_writes(tmp_path, straight):  # noqa: F811
    outs = [tmp_path / f"out{node}" for node in range(NODES)]
    port = free_port()
    commands = [node_command(node, port, [*RUN, "--out", str(outs[node])]) for node in range(NODES)]
    run_dir = check_two_node_run(run_nodes(tmp_path, commands), outs)
    for name in ("samples.parquet", "dynamics.parquet"):  # the same run as --nproc 2
        assert pd.read_parquet(run_dir / name).equals(pd.read_parquet(straight / name)), name


def can_hide_folders() -> bool:
    """Whether `unshare -rm` (an unprivileged user and mount namespace) works here."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not can_hide_folders(), reason="needs unprivileged `unshare -rm` (Linux)")
def test_a_node_that_cannot_see_node_0s_folders_writes_nothing(tmp_path):
    """Node 1 runs in its own mount namespace, where node 0's --out is an empty folder of its own
    (`seen`): as on a second machine without a shared file system, rank 0's run folder is not
    there. Node 1 must not need it, and must write nothing there or under its own --out."""
    outs = [tmp_path / f"out{node}" for node in range(NODES)]
    seen = tmp_path / "node1-sees-at-out0"
    for folder in (*outs, seen):
        folder.mkdir()
    port = free_port()
    commands = [node_command(node, port, [*RUN, "--out", str(outs[node])]) for node in range(NODES)]
    commands[1] = [
        "unshare",
        "-rm",
        "sh",
        "-c",
        'mount --bind "$0" "$1" && shift && exec "$@"',
        str(seen),
        str(outs[0]),
        *commands[1],
    ]
    check_two_node_run(run_nodes(tmp_path, commands), outs)
    assert files_under(seen) == []
