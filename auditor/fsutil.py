"""Atomic file writing and path containment, shared by every writer and loader; the paths the
user names expanded and resolved in one place (`user_path`, `resolved`: `~user`, symlink
loops), the tool's cache folder, and lock files that are never followed through a symlink."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from auditor.errors import UserError, shown

CACHE_ENV = "AUDIT_CACHE_DIR"


def user_path(text: str | os.PathLike, what: str) -> Path:
    """`text` (a path the user gave: a flag's value, a registry root, an environment variable;
    `what` names it) with `~` or `~user` expanded. An unknown user, or `~` without a home
    folder, is refused (`UserError`) rather than left as a folder literally named `~user`."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise UserError(
            f"{what} {shown(text)}: its ~ names no home folder on this machine (no such user, "
            "or HOME unset): spell the path out"
        ) from None


def absolute_user_path(text: str, what: str) -> str:
    """`text` expanded (`user_path`) and made absolute, `..` removed, symlinks kept."""
    return os.path.abspath(user_path(text, what))


def resolved(path: str | os.PathLike, what: str) -> Path:
    """`path` expanded (`user_path`) and resolved (symlinks followed, `..` removed; it need not
    exist). A symlink loop, or a folder on the way that cannot be searched, is refused naming
    `what` and the path: every path the user names is resolved here."""
    try:
        return user_path(path, what).resolve()
    except (OSError, RuntimeError) as err:  # RuntimeError: pathlib's "Symlink loop from ..."
        reason = getattr(err, "strerror", None) or "a symbolic link loop"
        raise UserError(
            f"{what} {shown(path)} cannot be resolved ({reason}): fix the path or name another"
        ) from None


def cache_dir() -> Path:
    """The tool's own folder for derived files (image caches, crash reports, numba's JIT):
    `$AUDIT_CACHE_DIR`, default `~/.cache/audit`. Set but empty (it would be the current
    folder) is refused; what the folder may be is the write guard's to check
    (`auditor.write_guard.checked_cache_dir`), before a command writes there."""
    text = os.environ.get(CACHE_ENV)
    if text is None:
        try:
            return Path.home() / ".cache" / "audit"
        except RuntimeError:
            raise UserError(f"no home folder to keep the cache in: set {CACHE_ENV}") from None
    if not text.strip():
        raise UserError(
            f"{CACHE_ENV} is set but empty (it would be the current folder): unset it for "
            "~/.cache/audit, or name a folder"
        )
    return user_path(text, CACHE_ENV)


def open_lock(path: Path) -> int:
    """A descriptor on the lock file `path` (created if missing; never truncated), to `flock`.
    A lock file is the tool's own: a symbolic link in its place (which could lead anywhere) or
    anything but a regular file (a FIFO would block the open) is refused, never followed."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UserError(
                f"the lock file {shown(path)} is a symbolic link, which audit never makes: "
                "remove it"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"the lock file {shown(path)} is not a regular file: remove it")
    return fd


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
