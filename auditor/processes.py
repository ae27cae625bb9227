"""`audit run --nproc N`: the training processes, launched through torchrun and stopped with
their parent."""

from __future__ import annotations

import signal
import sys


def launch_processes(nproc: int, argv: list[str]) -> int:
    """`audit run ... --nproc N` is `torchrun --standalone --nproc-per-node N -m auditor run ...`
    (through `auditor.launch`, which ends in one sentence, not torchrun's traceback).
    Interrupted (Ctrl-C, SIGTERM), it passes SIGTERM on to torchrun, which stops the training
    processes (the first marks the run folder `interrupted`), and waits for them. Killed outright
    (SIGKILL), it takes torchrun with it on Linux: the kernel sends torchrun SIGTERM."""
    import subprocess

    for i, arg in enumerate(argv):  # drop --nproc N / --nproc=N
        if arg == "--nproc":
            argv = argv[:i] + argv[i + 2 :]
            break
        if arg.startswith("--nproc="):
            argv = argv[:i] + argv[i + 1 :]
            break
    command = [
        sys.executable,
        "-m",
        "auditor.launch",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "auditor",
        *argv,
    ]
    launcher = subprocess.Popen(
        command, preexec_fn=term_with_parent if sys.platform == "linux" else None
    )
    try:
        return launcher.wait()
    except KeyboardInterrupt:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=120)
        except subprocess.TimeoutExpired:
            launcher.kill()
        raise


def term_with_parent() -> None:
    """Run in the child before exec: ask the kernel for SIGTERM when this parent dies
    (prctl PR_SET_PDEATHSIG = 1)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
