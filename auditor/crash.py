"""What the CLI does with an error that is neither the user's input (`UserError`, exit 2) nor
an interruption: a bug, or the machine (a full disk, a file made unreadable underneath us).

The user sees one sentence, `audit: unexpected error: <type>: <message>`, and where the full
Python traceback was saved (`$AUDIT_CACHE_DIR/crashes/`, default `~/.cache/audit/crashes/`),
to attach to a bug report; exit code 1. `AUDIT_DEBUG=1` lets the traceback through instead.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

from auditor.fsutil import cache_dir


def debugging() -> bool:
    return os.environ.get("AUDIT_DEBUG", "") not in ("", "0")


def save_traceback(err: BaseException) -> Path | None:
    """Write `err`'s traceback to a new file under cache_dir()/crashes; None if that fails."""
    text = "".join(traceback.format_exception(err))
    folder = cache_dir() / "crashes"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        path.write_text(text, encoding="utf-8", errors="backslashreplace")
    except OSError:
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
    first = (str(err).splitlines() or [""])[0][:300]  # a library's message may run for pages
    return [
        f"audit: unexpected error: {type(err).__name__}: {first}",
        f"audit: {where}; please attach it to a bug report",
    ]
