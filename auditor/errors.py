"""Errors a user can fix. The CLI prints their message and exits with code 2.

A message is one sentence: a path in it is shown whole only up to SHOWN characters (`shown`);
the CLI passes every message it prints through `shorten_words`, so that no path, however long,
turns a sentence into pages."""

from __future__ import annotations

import os
import re

SHOWN = 120  # characters of a path (or any word) shown whole in a message
LONG_WORD = re.compile(rf"\S{{{SHOWN + 1},}}")


class UserError(Exception):
    """Bad input or usage: the message says what to fix."""


def shown(path: str | os.PathLike) -> str:
    """`path` for a message: whole up to SHOWN characters, else its start and its end around
    `...` (the end names the file, the start where it lies)."""
    text = os.fspath(path)
    if len(text) <= SHOWN:
        return text
    return f"{text[: SHOWN // 2 - 10]}...{text[-(SHOWN // 2 + 7) :]}"


def shorten_words(message: str) -> str:
    """`message` with every word (a run of non-blank characters) longer than SHOWN `shown`."""
    return LONG_WORD.sub(lambda found: shown(found.group()), message)


def first_line(err: BaseException) -> str:
    """`Type: the first line of its message`, the line cut at 300 characters (a library's
    message may run for pages)."""
    text = (str(err).splitlines() or [""])[0]
    return f"{type(err).__name__}: {text[:300]}"
