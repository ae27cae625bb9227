"""CSV cells a spreadsheet would run as formulas (OWASP CSV injection): neutralised when the tool
writes a CSV, restored when it reads one back.

A cell that itself begins with the quote is quoted too, so that every text comes back exactly:
`=1` is written `'=1`, `'=1` (a file really named so) `''=1`, and reading strips one quote.

A leaf module (it imports nothing of the tool) so that the run-folder writers, the dataset
label files and the relabel decisions can all share it without importing one another.
"""

from __future__ import annotations

from typing import Any

# Characters that make a spreadsheet evaluate a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
QUOTED = (*FORMULA_PREFIXES, QUOTE)  # the cells written with one more quote in front


def neutralise_cell(value: Any) -> Any:
    """Prefix text cells that a spreadsheet would run as formulas, or that begin with the quote,
    with a quote."""
    if isinstance(value, str) and value.startswith(QUOTED):
        return QUOTE + value
    return value


def restore_cell(value: Any) -> Any:
    """Undo `neutralise_cell` when reading back a CSV this tool wrote."""
    if isinstance(value, str) and value[:1] == QUOTE and value[1:].startswith(QUOTED):
        return value[1:]
    return value
