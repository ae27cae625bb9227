"""Atomic file writing and path containment, shared by every writer and loader."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from auditor.errors import UserError


def cache_dir() -> Path:
    """The tool's own folder for derived files (image caches, crash reports, numba's JIT):
    `$AUDIT_CACHE_DIR`, default `~/.cache/audit`."""
    return Path(os.environ.get("AUDIT_CACHE_DIR", Path.home() / ".cache" / "audit"))


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    A reader never sees a half-written file: either the old one (or none) or the complete new one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def inside_root(root: Path, relative: str, *, where: str) -> Path:
    """Resolve `relative` under `root`, refusing absolute paths and anything that escapes the root
    (`..`, symlinks pointing outside). `where` names the line that held the path, for the error."""
    if "\0" in relative or not relative.strip():
        raise UserError(f"{where}: {relative!r} is not a file path")
    if os.path.isabs(relative):
        raise UserError(
            f"{where}: absolute path {relative!r} is not allowed; paths are relative to {root}"
        )
    root_resolved = Path(root).resolve()
    resolved = (root_resolved / relative).resolve()
    if not resolved.is_relative_to(root_resolved):
        raise UserError(f"{where}: path {relative!r} escapes the dataset root {root_resolved}")
    return resolved
