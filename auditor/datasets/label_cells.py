"""The one reader of label cells, for every dataset kind and label file: the csv kind's
`labels.csv`, RAF-DB lists and their noise files, FER2013's `emotion`, AffectNet's `expression`
(its CSV lists and `_exp.npy` files), corrected label files (`--labels`) and relabel CSVs.

A class id is written in ASCII digits and nothing else: Python's `int()` also reads `+3`,
`0_3`, ` 3` and `٣` as 3, and `float()` reads `1.0` and `-1`; each of those is refused as a
number not written in plain digits, never read as another spelling of a class. Within one file
every class is spelt one way (`1` and `01`, or a class's name and its id, in one file are
refused, naming both lines). Paths are compared as the files they resolve to, so one image listed
twice (`img/x.png`, `./img/x.png`, `img//x.png`) is refused, naming both lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from auditor.errors import UserError

MAX_DIGITS = 18  # beyond this an id is out of every range, and `int()` has limits
HIDDEN = "(text not shown: the file lies outside the dataset root)"


def shown(text: object, quote: bool) -> str:
    """`text` from a label file as a message shows it: its repr, or HIDDEN (`quote` is false for
    a file of the dataset that resolves outside its root)."""
    return repr(text) if quote else HIDDEN


def label_id(text: str) -> int | None:
    """The integer `text` (already stripped) writes in ASCII digits, else None. Not
    `str.isdigit` alone: `'²'` and `'٣'` are digits to it."""
    if text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS:
        return int(text)
    return None


def class_id(text: str, num_classes: int) -> int | None:
    """The class id a cell holds (`0` .. `num_classes - 1` in ASCII digits), else None."""
    value = label_id(text.strip())
    return value if value is not None and value < num_classes else None


def looks_numeric(text: str) -> bool:
    """Whether `text` is a number written otherwise than in plain ASCII digits (a sign, a point,
    an exponent, an underscore, another script's digits): what a person, or Python, would read
    as a class id, but this tool refuses."""
    if (text.isascii() and text.isdigit()) or not any(ch.isdigit() for ch in text):
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


class LabelReader:
    """Reads the label cells of one file (`source`): a class name (when `names` are given) or an
    id in `first .. first + count - 1`, returned 0-based. Remembers the spelling of each class,
    so one class written two ways is refused naming both places. Text is quoted in refusals
    only when `quote`."""

    def __init__(
        self,
        source: object,
        count: int,
        *,
        first: int = 0,
        names: Sequence[str] = (),
        quote: bool = True,
    ):
        self.source, self.count, self.first, self.quote = source, count, first, quote
        self.lookup = {name: i for i, name in enumerate(names)}
        self.names = list(names)
        self.spelt: dict[int, tuple[str, str]] = {}  # class -> (its first spelling, where)

    def read(self, cell: str, at: str) -> int:
        """The 0-based class of `cell`; `at` (`line 5`, or a file of a folder) says where it is
        in the source."""
        text, where = cell.strip(), f"{self.source}, {at}"
        label = self.lookup.get(text)
        if label is None:
            label = self.id_of(text, where)
        spelling, first_at = self.spelt.setdefault(label, (text, at))
        if spelling != text:
            raise UserError(
                f"{where}: label {shown(text, self.quote)} names the same class as "
                f"{shown(spelling, self.quote)} on {first_at}; write each class one way"
            )
        return label

    def read_column(self, cells: Sequence[str], lines: Sequence[int]) -> np.ndarray:
        """The 0-based classes of a column of `cells` on `lines`: each distinct cell is read once,
        at the line where it first appears (so a refusal names that line)."""
        text = np.array([cell.strip() for cell in cells], dtype=str)
        distinct, first, inverse = np.unique(text, return_index=True, return_inverse=True)
        labels = np.empty(len(distinct), dtype=np.int64)
        for i in np.argsort(first, kind="stable"):
            labels[i] = self.read(distinct[i], f"line {lines[first[i]]}")
        return labels[inverse]

    def id_of(self, text: str, where: str) -> int:
        """The 0-based class of an id cell, or the refusal saying what is wrong with it."""
        last = self.first + self.count - 1
        plain = text.isascii() and text.isdigit()
        if not plain and looks_numeric(text):
            raise UserError(
                f"{where}: label {shown(text, self.quote)} is not written in plain ASCII digits "
                f"(class ids are {self.first}..{last})"
            )
        value = label_id(text) if plain else None
        in_range = value is not None and self.first <= value <= last
        if self.names and not in_range:
            raise UserError(
                f"{where}: unknown label {shown(text, self.quote)}; classes are {self.names}"
            )
        if not plain:
            raise UserError(f"{where}: label {shown(text, self.quote)} is not an integer")
        if value is None or not in_range:
            written = text if value is not None else f"of {len(text)} digits"
            raise UserError(f"{where}: label {written} is outside {self.first}..{last}")
        return value - self.first


def refuse_same_file(
    files: Sequence[Path | str],
    cells: Sequence[str],
    lines: Sequence[int],
    source: Path,
    quote: bool,
) -> None:
    """Refuse a label file (`source`) whose rows (`cells` on `lines`) list one file twice, however
    its path is written: `files` are the paths resolved, or at least normalised
    (`posixpath.normpath`: `./`, `//` and `a/..` removed)."""
    seen: dict[Path | str, int] = {}
    for row, path in enumerate(files):
        first = seen.setdefault(path, row)
        if first != row:
            raise UserError(
                f"{source}, line {lines[row]}: {shown(cells[row], quote)} is listed twice, "
                f"also as {shown(cells[first], quote)} on line {lines[first]}; list each image once"
            )
