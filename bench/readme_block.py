"""Write a benchmark's table into README.md between its two marker comments."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def write_block(markers: tuple[str, str], text: str, readme: Path = README) -> None:
    """Replace the one `markers[0] ... markers[1]` block of `readme` with `text`; exits when the
    file has no such block or more than one."""
    block = f"{markers[0]}\n{text}\n{markers[1]}"
    pattern = re.escape(markers[0]) + ".*?" + re.escape(markers[1])
    updated, count = re.subn(pattern, lambda _: block, readme.read_text(), flags=re.S)
    if count != 1:
        raise SystemExit(f"{readme.name} needs one {markers[0]} ... {markers[1]} block")
    readme.write_text(updated)
