"""CSV cells a spreadsheet would run as formulas (OWASP CSV injection): neutralised when the tool
writes a CSV, restored when it reads one back.

A leaf module (it imports nothing of the tool) so that the run-folder writers, the dataset
label files and the relabel decisions can all share it without importing one another.
"""

from __future__ import annotations

from typing import Any

# Characters that make a spreadsheet evaluate a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """Prefix text cells that a spreadsheet would run as formulas with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def restore_cell(value: Any) -> Any:
    """Undo `neutralise_cell` when reading back a CSV this tool wrote."""
    if isinstance(value, str) and value[:1] == "'" and value[1:2] and value[1] in FORMULA_PREFIXES:
        return value[1:]
    return value
