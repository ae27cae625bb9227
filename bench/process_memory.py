"""The wall time and peak memory of a process tree, measured from outside (bench/scale.py's
stages): every POLL_S seconds the tree of the process (the process, its descendants, and
everything in its session, e.g. decoding workers, torchrun ranks, FiftyOne's MongoDB) is read
from /proc/<pid>/status and /proc/<pid>/smaps_rollup. Peak RSS is the largest sum over the tree
of VmRSS at one poll (shared pages counted once per process: an upper bound), or the largest
single process's ru_maxrss from wait4 if that is larger (a peak shorter than a poll); PSS
(shared pages divided among their processes) and RssAnon are summed alike. Linux only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.2


def parse_stat(text: str) -> tuple[int, int]:
    """(parent pid, session id) from the text of /proc/<pid>/stat."""
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return int(fields[1]), int(fields[3])


def parse_kb(text: str, keys: tuple[str, ...]) -> dict[str, int]:
    """Bytes of the `keys` lines ('VmRSS:   1234 kB') of /proc/<pid>/status or smaps_rollup."""
    out = dict.fromkeys(keys, 0)
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in out:
            out[name] = int(value.split()[0]) * 1024
    return out


def tree(root: int, procs: dict[int, tuple[int, int]]) -> set[int]:
    """`root`, every process of its session (`root` leads one) and every descendant of those
    (`procs`: pid -> (parent pid, session id))."""
    children = defaultdict(list)
    for pid, (ppid, _sid) in procs.items():
        children[ppid].append(pid)
    members = {root} | {pid for pid, (_ppid, sid) in procs.items() if sid == root}
    todo = list(members)
    while todo:
        for child in children[todo.pop()]:
            if child not in members:
                members.add(child)
                todo.append(child)
    return members


def processes() -> dict[int, tuple[int, int]]:
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    out[int(entry.name)] = parse_stat(f.read())
            except (OSError, ValueError, IndexError):
                continue  # gone since the listing
    return out


def tree_memory(root: int) -> dict[str, int]:
    """Summed VmRSS, RssAnon and Pss (bytes) of `root`'s tree now."""
    total = {"VmRSS": 0, "RssAnon": 0, "Pss": 0}
    for pid in tree(root, processes()):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = parse_kb(f.read(), ("VmRSS", "RssAnon"))
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss = parse_kb(f.read(), ("Pss",))
        except (OSError, ValueError):
            continue
        for key, value in (status | pss).items():
            total[key] += value
    return total


@dataclass
class Measured:
    ok: bool
    wall_s: float
    rss: int  # max(peak of the tree's summed VmRSS, the largest process's ru_maxrss)
    pss: int
    anon: int
    maxrss: int  # ru_maxrss of wait4: the largest single process of the tree (waited for)
    stdout: str
    log: Path
    load: float  # the 1-minute load average when the stage started


def measure(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> Measured:
    """Run `cmd` in a new session, in `cwd`; its wall time and the peaks of its process tree's
    memory."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = {"VmRSS": 0, "RssAnon": 0, "Pss": 0}
    load = os.getloadavg()[0]
    with open(log, "w") as out, open(log.with_suffix(".stdout"), "w") as stdout:
        print("$", " ".join(cmd), file=out, flush=True)
        start = time.perf_counter()
        child = subprocess.Popen(
            cmd,
            stdout=stdout,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            cwd=cwd,
        )
        try:
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                for key, value in tree_memory(child.pid).items():
                    peak[key] = max(peak[key], value)
                time.sleep(POLL_S)
        except KeyboardInterrupt:  # Ctrl-C reaches only this process: pass it on to the stage's
            os.killpg(child.pid, signal.SIGINT)
            child.wait()
            raise
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss * 1024
    text = log.with_suffix(".stdout").read_text()
    return Measured(
        child.returncode == 0,
        wall,
        max(peak["VmRSS"], maxrss),
        peak["Pss"],
        peak["RssAnon"],
        maxrss,
        text,
        log,
        load,
    )


def result_of(m: Measured) -> dict:
    """The JSON a Python stage prints last."""
    lines = [line for line in m.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT ") :]) if lines else {}
