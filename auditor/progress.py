"""Progress of a long stage on stderr. On a terminal, tqdm's bar; in a log (stderr not a
terminal: nohup, a batch scheduler, CI), where tqdm would draw nothing useful, one line at most
every LOG_SECONDS (`AUDIT_PROGRESS_SECONDS` sets another interval) and one when the stage ends:

    audit: ce: 12,800/50,000 img (26%), 410 img/s, ETA 1:31
    audit: ce: 50,000/50,000 img in 2:02 (410 img/s)
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from auditor.errors import UserError

LOG_SECONDS = 30.0
ENV = "AUDIT_PROGRESS_SECONDS"


def log_interval() -> float:
    """Seconds between two progress lines in a log: `AUDIT_PROGRESS_SECONDS`, else LOG_SECONDS."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return LOG_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise UserError(f"{ENV} must be a positive number of seconds, not {text[:40]!r}")
    return seconds


def clock(seconds: float) -> str:
    """0:07, 12:34, 1:02:03."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LogProgress:
    """tqdm's interface as the training uses it (`update`, a settable `total`, `refresh`, a
    context manager), written as lines for a log."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        interval: float,
        stream: TextIO,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.stream, self.now = stream, now
        self.done = 0
        self.start = self.last = now()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None and self.done:
            elapsed = self.now() - self.start
            rate = self.done / elapsed if elapsed > 0 else math.inf
            self.write(f"{self.count()} in {clock(elapsed)} ({rate:,.0f} {self.unit}/s)")

    def count(self) -> str:
        return f"{self.done:,}/{self.total:,} {self.unit}"

    def write(self, text: str) -> None:
        print(f"audit: {self.desc}: {text}", file=self.stream, flush=True)

    def update(self, k: int) -> None:
        self.done += k
        at = self.now()
        if at - self.last < self.interval:
            return
        self.last = at
        rate = self.done / (at - self.start)
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        eta = clock((self.total - self.done) / rate) if rate > 0 else "unknown"
        self.write(f"{self.count()}{share}, {rate:,.0f} {self.unit}/s, ETA {eta}")

    def refresh(self) -> None:
        """Nothing to redraw: the next line shows the new total."""


def progress_bar(total: int, desc: str, unit: str, shown: bool) -> tqdm | LogProgress:
    """The progress of a stage of `total` `unit`s named `desc`: not `shown` (another process
    reports it), nothing; on a terminal, tqdm's bar; otherwise `LogProgress` lines."""
    if shown and not sys.stderr.isatty():
        return LogProgress(total, desc, unit, log_interval(), sys.stderr)
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not shown,
        mininterval=1.0,
    )
