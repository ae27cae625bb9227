"""What the CLI does with an error that is neither the user's input (`UserError`, exit 2) nor
an interruption: a bug, or the machine (a full disk, a file made unreadable underneath us).

The user sees one sentence, `audit: unexpected error: <type>: <message>`, and where the full
Python traceback was saved (`$AUDIT_CACHE_DIR/crashes/`, default `~/.cache/audit/crashes/`),
to attach to a bug report; exit code 1. `AUDIT_DEBUG` set to 1, true, yes or on (any case)
lets the traceback through instead; 0, false, no, off or empty do not, and any other value is
refused when `audit` starts (`check_debug`).

An error of the file system on a path (`environment_problem`: permission denied, a read-only
file system, a full disk, a symlink loop, a name too long, ...) is the user's machine, not a
bug: one sentence naming the path and what to fix, exit 2.
"""

from __future__ import annotations

import errno
import os
import time
import traceback
from pathlib import Path

from auditor.errors import UserError, first_line, shown
from auditor.write_guard import checked_cache_dir

DEBUG_ENV = "AUDIT_DEBUG"
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})


def debug_value() -> str:
    return os.environ.get(DEBUG_ENV, "").strip().lower()


def check_debug() -> None:
    """Refuse an AUDIT_DEBUG that is neither true nor false (see the module docstring)."""
    if debug_value() not in TRUE | FALSE:
        raise UserError(
            f"{DEBUG_ENV} must be 1, true, yes or on (show tracebacks) or 0, false, no, off or "
            f"empty, not {os.environ[DEBUG_ENV][:40]!r}"
        )


def debugging() -> bool:
    """Whether AUDIT_DEBUG asks for tracebacks."""
    return debug_value() in TRUE


PERMISSION = "permission denied: give this user access to it, or name another path"
FIXES = {
    errno.EACCES: PERMISSION,
    errno.EPERM: PERMISSION,
    errno.EROFS: "it is on a read-only file system: name a path on a writable one",
    errno.ENOSPC: "no space left on its disk: free some space, or name a path on another disk",
    errno.EDQUOT: "the disk quota is used up: free some space, or name a path on another disk",
    errno.ELOOP: "a symbolic link loop: fix the link, or name another path",
    errno.ENAMETOOLONG: "a name in it is too long for the file system: name a shorter path",
    errno.ENOTDIR: "a part of it is a file, not a folder: name another path",
    errno.EISDIR: "it is a folder where a file is needed: name a file",
}


def environment_problem(err: OSError) -> str | None:
    """The sentence for a file-system error on a path (see the module docstring), naming both
    paths of a two-path call (a rename: source -> destination); None for any other OSError (a
    bug until shown otherwise)."""
    fix = FIXES.get(err.errno)
    if fix is None or err.filename is None:
        return None
    paths = [shown(os.fsdecode(f)) for f in (err.filename, err.filename2) if f is not None]
    return f"{' -> '.join(paths)}: {fix}"


def save_traceback(err: BaseException) -> Path | None:
    """Write `err`'s traceback to a new file under cache_dir()/crashes; None if that fails."""
    text = "".join(traceback.format_exception(err))
    try:
        folder = checked_cache_dir() / "crashes"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        path.write_text(text, encoding="utf-8", errors="backslashreplace")
    except Exception:  # AUDIT_CACHE_DIR refused, the disk: a report is never a second crash
        return None
    return path


def crash_lines(err: BaseException) -> list[str]:
    """The lines printed for an unexpected error (see the module docstring)."""
    report = save_traceback(err)
    where = (
        f"the traceback is in {report}"
        if report
        else "the traceback could not be saved; rerun with AUDIT_DEBUG=1 to see it"
    )
    return [
        f"audit: unexpected error: {first_line(err)}",
        f"audit: {where}; please attach it to a bug report",
    ]
