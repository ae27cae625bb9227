"""What this process may use of the machine: memory (for choosing where the image cache lives)
and cores (for the decoding processes). Linux's /proc and /sys; elsewhere the fallbacks."""

from __future__ import annotations

import os
import resource
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
# (limit file, usage file) of cgroup v2 and v1
CGROUP_FILES = (
    ("memory.max", "memory.current"),
    ("memory.limit_in_bytes", "memory.usage_in_bytes"),
)


def proc_fields(path: str) -> dict[str, int]:
    """`Key: value kB` lines of a /proc file, in bytes."""
    fields = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0]) * (1024 if parts[-1] == "kB" else 1)
    return fields


def cgroup_folders() -> list[Path]:
    """This process's memory cgroup folders, from its own up to the root (v2: the unified
    hierarchy; v1: the memory controller's), as far as they are visible here."""
    folders = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return folders
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        base = CGROUP if controllers == "" else CGROUP / "memory"
        if controllers not in ("", "memory") and "memory" not in controllers.split(","):
            continue
        rel = Path(path.lstrip("/"))
        for folder in (rel, *rel.parents):
            if (base / folder).is_dir():
                folders.append(base / folder)
    return folders


def cgroup_room(folders: list[Path] | None = None) -> list[int]:
    """Bytes left under each memory limit of this process's cgroup and its ancestors (or of
    `folders`): limit - (usage - inactive file pages, which the kernel reclaims first)."""
    room = []
    for folder in cgroup_folders() if folders is None else folders:
        for limit_file, usage_file in CGROUP_FILES:
            try:
                cap = (folder / limit_file).read_text().strip()
                if cap == "max" or int(cap) >= 2**60:
                    continue
                usage = int((folder / usage_file).read_text())
                stat = dict(
                    line.split() for line in (folder / "memory.stat").read_text().splitlines()
                )
                inactive = int(stat.get("inactive_file", stat.get("total_inactive_file", 0)))
                room.append(int(cap) - (usage - inactive))
            except (OSError, ValueError):
                continue
    return room


def memory_budget() -> int:
    """Bytes this process may still take: the least of the memory the kernel reports available
    (MemAvailable), the room under RLIMIT_AS and under every cgroup memory limit above this
    process, shared among the processes torchrun started on this machine (LOCAL_WORLD_SIZE),
    which each hold their own images."""
    room = []
    try:
        room.append(proc_fields("/proc/meminfo")["MemAvailable"])
        used_address_space = proc_fields("/proc/self/status")["VmSize"]
    except (OSError, KeyError):
        room.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))  # free memory
        used_address_space = 0
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        room.append(soft - used_address_space)
    room += cgroup_room()
    return max(0, min(room)) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def cores() -> int:
    """Cores this process may run on (its CPU affinity: a batch scheduler's share of a node)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
