"""Parsing of whitespace-separated `name label` label files (RAF-DB's list and its noise files)."""

from __future__ import annotations

from pathlib import Path

from auditor.errors import UserError


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-empty lines; tolerates a UTF-8 BOM and CRLF."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err})") from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def parse_name_label(
    path: Path, *, num_classes: int, first_label: int = 1
) -> list[tuple[str, int]]:
    """Rows `name label` with integer labels in [first_label, first_label + K), returned as
    (name, label - first_label). Rejects, naming the line: wrong column counts, non-integer or
    out-of-range labels, duplicate names."""
    rows: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    last = first_label + num_classes - 1
    for number, line in read_lines(path):
        parts = line.split()
        where = f"{path}, line {number}"
        if len(parts) != 2:
            raise UserError(f"{where}: expected 'name label', found {len(parts)} fields: {line!r}")
        name, label_text = parts
        try:
            label = int(label_text)
        except ValueError:
            raise UserError(f"{where}: label {label_text!r} is not an integer") from None
        if not first_label <= label <= last:
            raise UserError(f"{where}: label {label} is outside {first_label}..{last}")
        if name in seen:
            raise UserError(f"{where}: {name!r} already appears on line {seen[name]}")
        seen[name] = number
        rows.append((name, label - first_label))
    if not rows:
        raise UserError(f"{path}: no label rows found")
    return rows
