"""Strict parsers of label files: whitespace-separated `name label` lists (RAF-DB's list and its
noise files) and CSV tables with a header (every other label file).

Errors name the file and line. They quote the file's text (a cell, a header, a line) only when
`quote` is true: a loader passes `quotable(path, root)`, false for a file of the dataset that
resolves outside its root (a `labels.csv` linked to someone's secrets must not be printed);
files the user names on the command line (`--labels`, `--noise-file`) are quoted."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.datasets.label_cells import HIDDEN, LabelReader, shown
from auditor.errors import UserError


def quotable(path: Path, root: Path | None) -> bool:
    """Whether messages may quote the text of `path`: it lies inside `root` once symlinks are
    resolved, or there is no root to compare with (a file named on the command line)."""
    return root is None or Path(path).resolve().is_relative_to(Path(root).resolve())


def not_text(path: Path, err: UnicodeDecodeError | OSError) -> UserError:
    """The refusal of a label file that cannot be read as UTF-8 text."""
    if isinstance(err, OSError):
        return UserError(f"{path}: cannot be read ({err.strerror})")
    raw = Path(path).read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as whole:  # the offset in the file, not in a buffer
        line = raw[: whole.start].count(b"\n") + 1
        return UserError(f"{path}, line {line}: not UTF-8 text (save the file as UTF-8)")
    return UserError(f"{path}: not UTF-8 text (save the file as UTF-8)")


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-empty lines; tolerates a UTF-8 BOM and
    CRLF."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as err:
        raise not_text(path, err) from None
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def parse_name_label(
    path: Path, *, num_classes: int, first_label: int = 1, quote: bool = True
) -> list[tuple[str, int]]:
    """Rows `name label` with integer labels in [first_label, first_label + K), returned as
    (name, label - first_label). Rejects, naming the line: wrong column counts, labels the one
    label reader refuses (`LabelReader`), duplicate names (quoting the text when `quote`)."""
    rows: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    reader = LabelReader(path, num_classes, first=first_label, quote=quote)
    for number, line in read_lines(path):
        parts = line.split()
        where = f"{path}, line {number}"
        if len(parts) != 2:
            raise UserError(
                f"{where}: expected 'name label', found {len(parts)} fields: {shown(line, quote)}"
            )
        name, label_text = parts
        label = reader.read(label_text, f"line {number}")
        if name in seen:
            raise UserError(f"{where}: {shown(name, quote)} already appears on line {seen[name]}")
        seen[name] = number
        rows.append((name, label))
    if not rows:
        raise UserError(f"{path}: no label rows found")
    return rows


def read_csv_rows(
    path: Path, required: Sequence[str], *, quote: bool = True
) -> tuple[pd.DataFrame, np.ndarray]:
    """(the rows of a CSV label file as strings, the 1-based line number of each row). The
    header must name every `required` column, once; every non-empty row must have as many
    fields as the header. Tolerates a UTF-8 BOM, CRLF and blank lines. Errors name the line
    (and quote the header when `quote`)."""
    path = Path(path)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            try:
                header = [name.strip() for name in next(reader)]
            except StopIteration:
                raise UserError(
                    f"{path}: empty file; expected a header naming {list(required)}"
                ) from None
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise UserError(
                        f"{path}, line {reader.line_num}: expected {len(header)} fields "
                        f"({','.join(header) if quote else 'as its header'}), found {len(row)}"
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except (UnicodeDecodeError, OSError) as err:
        raise not_text(path, err) from None
    except csv.Error as err:
        raise UserError(f"{path}, line {reader.line_num}: not valid CSV ({err})") from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    missing = [name for name in required if name not in header]
    if repeated or missing:
        raise UserError(
            f"{path}: expected a header with the columns {','.join(required)} (each once), "
            f"found {header if quote else HIDDEN}"
        )
    return pd.DataFrame(rows, columns=header, dtype=str), np.array(lines, dtype=np.int64)


def int_column(
    values: pd.Series, lines: np.ndarray, path: Path, column: str, *, quote: bool = True
) -> np.ndarray:
    """The integers of a text column (counts, face boxes: not labels, see `LabelReader`), in
    ASCII digits; a cell that is not one is refused, naming its line."""
    text = values.str.strip()
    bad = np.flatnonzero(~text.str.fullmatch(r"-?[0-9]{1,9}").to_numpy(bool))
    if len(bad):
        raise UserError(
            f"{path}, line {lines[bad[0]]}: {column} {shown(text.iloc[bad[0]], quote)} is not an "
            "integer (at most 9 digits)"
        )
    return text.astype(np.int64).to_numpy()
