"""Class-conditional label noise drawn from a transition matrix: the human FER confusion of
FERPlus's taggers (`--noise-type human-fer`) and any K x K matrix from a CSV file
(`--noise-type matrix --noise-matrix FILE`). The two noise models are registered in
`auditor.datasets.noise`; this module holds their matrices and arithmetic.

Direction. Every matrix here has rows = true class and columns = given class:
T[i, j] = P(given = j | true = i), each row summing to 1 (row-stochastic). (cleanlab's
`noise_matrix` is the transpose, P(given = i | true = j), column-stochastic.)

Human FER confusion (`human_fer_matrix`, the CSV `human_fer.csv` shipped in the package so
that the tool works offline). The numbers derive from FERPlus's votes (Barsoum et al., ICMI
2016: `fer2013new.csv` of github.com/microsoft/FERPlus, MIT licence, Copyright (c) Microsoft
Corporation; ten crowd taggers per FER2013 image), estimated by `estimate_human_fer`: over the
rows that FERPlus's plurality rule keeps with 8 classes (`auditor.datasets.ferplus`: ties,
`unknown`/`NF` pluralities and rows without votes are dropped; all three splits), with c_r the
row's vote counts over the 8 emotions and y_r its plurality,

    T[i, j] = mean over the rows r with y_r = i of  c_r[j] / sum_k c_r[k]

that is P(one tagger votes j | the plurality is i), the tagger drawn at random among the row's
taggers who voted an emotion. Every image weighs the same (not every vote): it is the confusion
of the `ferplus-annotator` protocol, one tagger's vote against the plurality.

Mapping onto a dataset (`expression_matrix`): class names are matched to the 8 expressions by
name, case-insensitively, with the usual synonyms (`SYNONYMS`: happy -> happiness, sad ->
sadness, angry -> anger, surprised -> surprise, fearful -> fear, disgusted -> disgust,
contemptuous -> contempt), in the dataset's label order. A dataset with a subset S of the
expressions (7 classes: no contempt) gets the restricted matrix renormalised per row,
T_S[i, j] = T[i, j] / sum_{k in S} T[i, k]: the tagger's vote given that it is one of the
dataset's classes. A class that is not an expression is refused.

Scaling to `--noise-rate` (`scale_to_rate`, both noise models): with m_i = sum_{j != i} T[i, j]
(class i's off-diagonal mass) and p_i the share of class i among the labels being noised, the
matrix used is

    N[i, j] = s * T[i, j]  (j != i),   N[i, i] = 1 - s * m_i,   s = rate / sum_i p_i m_i

so the expected flip rate sum_i p_i (s m_i) equals `rate`, and the structure is kept: where a
class's flips go (each row's off-diagonal profile) and how noisy one class is against another
(the ratios m_i / m_j). s may exceed 1 (noisier than the source). `native_rate` = sum_i p_i m_i
is the source matrix's own flip rate on these labels: at --noise-rate equal to it, s = 1 and the
matrix is used as it is. A rate is reachable while no row goes negative, s * max_i m_i <= 1:
the highest is sum_i p_i m_i / max_i m_i (the noisiest class then flips all its labels); higher
rates are refused.

Matrix files (`read_matrix_csv`, `--noise-matrix FILE`): UTF-8 CSV, K rows of K numbers (row = true
class, column = given class), every number finite and >= 0, every row summing to 1 within 1e-6 (rows
are then divided by their sums). An optional first line of K class names (a header, recognised by a
cell that is not a number) says the order of rows and columns; the names must be the dataset's class
names (matched like expressions above: case-insensitively, with the synonyms), and the matrix is
reordered to the dataset's label order. Without a header, rows and columns are in the dataset's
label order. Blank lines and lines starting with `#` are ignored; there is no row-name column.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from auditor.errors import UserError

EXPRESSIONS = [
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
]
SYNONYMS = {
    "happy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "fearful": "fear",
    "disgusted": "disgust",
    "contemptuous": "contempt",
}
ROW_SUM_TOLERANCE = 1e-6
HUMAN_FER_CSV = "human_fer.csv"  # inside the auditor.datasets package


def canonical(name: str) -> str:
    """A class name as matched against others: stripped, lower case, expression synonyms
    replaced by their canonical expression (`Happy` -> `happiness`)."""
    key = str(name).strip().lower()
    return SYNONYMS.get(key, key)


# --------------------------------------------------------------------------- estimate


def confusion_from_votes(votes: np.ndarray) -> np.ndarray:
    """The 8 x 8 human confusion T (module docstring) of FERPlus vote counts [rows, 10] in
    FERPlus's column order (8 emotions, unknown, NF). Raises ValueError when some emotion is
    the plurality of no row (its row of T would be undefined)."""
    from auditor.datasets.ferplus import plurality_labels

    votes = np.asarray(votes, dtype=np.float64)
    kept = plurality_labels(votes, len(EXPRESSIONS))
    counts = votes[kept.keep, : len(EXPRESSIONS)]
    plurality = kept.plurality[kept.keep]
    shares = counts / counts.sum(axis=1, keepdims=True)  # a kept row has >= 1 emotion vote
    rows = np.bincount(plurality, minlength=len(EXPRESSIONS))
    if (rows == 0).any():
        missing = [EXPRESSIONS[i] for i in np.flatnonzero(rows == 0)]
        raise ValueError(f"no row has the plurality {', '.join(missing)}")
    matrix = np.zeros((len(EXPRESSIONS), len(EXPRESSIONS)))
    np.add.at(matrix, plurality, shares)
    return matrix / rows[:, None]


def estimate_human_fer(votes_csv: Path) -> tuple[list[str], np.ndarray]:
    """(EXPRESSIONS, the 8 x 8 human confusion) of a FERPlus votes file (`fer2013new.csv`)."""
    from auditor.datasets.ferplus import VOTE_COLUMNS, read_votes

    frame = read_votes(Path(votes_csv))
    return list(EXPRESSIONS), confusion_from_votes(frame[VOTE_COLUMNS].to_numpy(np.int64))


def matrix_csv(names: list[str], matrix: np.ndarray, comments: list[str] = ()) -> str:
    """The text of a matrix file: `# comment` lines, a header of class names, one row of
    10-decimal numbers per true class."""
    out = io.StringIO()
    for line in comments:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in matrix:
        writer.writerow([f"{v:.10f}" for v in row])
    return out.getvalue()


def human_fer_csv(votes_csv: Path) -> str:
    """The text of the shipped `human_fer.csv`, estimated from `votes_csv`."""
    names, matrix = estimate_human_fer(votes_csv)
    comments = [
        "Human FER confusion: row = plurality (true) class, column = one tagger's vote,",
        "T[i, j] = P(one tagger votes j | the plurality is i), averaged over images.",
        "Derived from FERPlus's votes (fer2013new.csv, github.com/microsoft/FERPlus;",
        "MIT licence, Copyright (c) Microsoft Corporation) by auditor.datasets.noise_matrix:",
        "python -m auditor.datasets.noise_matrix fer2013new.csv > auditor/datasets/human_fer.csv",
    ]
    return matrix_csv(names, matrix, comments)


# --------------------------------------------------------------------------- files


def parse_matrix(text: str, where: str) -> tuple[list[str] | None, np.ndarray]:
    """(the header's class names or None, the K x K matrix) of a matrix file's text (format in
    the module docstring); UserError naming `where` (and the line) when it breaks the format."""
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise UserError(f"{where}: no matrix rows found (expected K rows of K numbers)")
    parsed = [
        (number, [cell.strip() for cell in next(csv.reader([line]))]) for number, line in lines
    ]
    names = None
    first_number, first = parsed[0]
    if not all(is_number(cell) for cell in first):
        names = first
        if any(not n for n in names):
            raise UserError(f"{where}, line {first_number}: the header has an empty class name")
        keys = [canonical(n) for n in names]
        twice = sorted({n for n, k in zip(names, keys, strict=True) if keys.count(k) > 1})
        if twice:
            raise UserError(
                f"{where}, line {first_number}: the header names a class twice: {', '.join(twice)}"
            )
        parsed = parsed[1:]
    k = len(names) if names is not None else len(parsed[0][1])
    if names is not None and not parsed:
        raise UserError(f"{where}: a header but no matrix rows")
    rows = []
    for number, cells in parsed:
        if len(cells) != k:
            raise UserError(f"{where}, line {number}: expected {k} values, found {len(cells)}")
        values = []
        for cell in cells:
            if not is_number(cell):
                raise UserError(f"{where}, line {number}: {cell!r} is not a number")
            value = float(cell)
            if not math.isfinite(value) or value < 0:
                raise UserError(
                    f"{where}, line {number}: {cell} is not a probability (finite, >= 0)"
                )
            values.append(value)
        total = sum(values)
        if abs(total - 1) > ROW_SUM_TOLERANCE:
            raise UserError(
                f"{where}, line {number}: the row sums to {total:.9g}, not 1 (within "
                f"{ROW_SUM_TOLERANCE:g}): each row is P(given label | true class)"
            )
        rows.append(values)
    if len(rows) != k:
        raise UserError(f"{where}: not square: {len(rows)} rows of {k} values (expected {k} rows)")
    matrix = np.array(rows, dtype=np.float64)
    return names, matrix / matrix.sum(axis=1, keepdims=True)


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_matrix_csv(path: Path) -> tuple[list[str] | None, np.ndarray]:
    """`parse_matrix` of the file `path`; its errors name the file as `--noise-matrix PATH`."""
    where = f"--noise-matrix {path}"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{where}: a folder, not a CSV file") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{where}: not UTF-8 text ({err})") from None
    return parse_matrix(text, where)


def matrix_for_classes(path: Path, class_names: list[str]) -> np.ndarray:
    """The matrix of file `path` in the label order of `class_names` (reordered by its header,
    if it has one); UserError when its size or names are not the dataset's classes."""
    names, matrix = read_matrix_csv(path)
    where = f"--noise-matrix {path}"
    k = len(class_names)
    if len(matrix) != k:
        raise UserError(
            f"{where}: a {len(matrix)} x {len(matrix)} matrix, but the dataset has {k} classes "
            f"({', '.join(class_names)})"
        )
    if names is None:
        return matrix
    index = {canonical(n): i for i, n in enumerate(names)}
    wanted = [canonical(n) for n in class_names]
    extra = [n for n in names if canonical(n) not in wanted]
    if extra:
        missing = [n for n in class_names if canonical(n) not in index]
        raise UserError(
            f"{where}: its header names {', '.join(extra)}, which the dataset lacks, and lacks "
            f"{', '.join(missing)} (the dataset's classes: {', '.join(class_names)})"
        )
    order = [index[w] for w in wanted]
    return matrix[np.ix_(order, order)]


def human_fer_matrix() -> tuple[list[str], np.ndarray]:
    """(EXPRESSIONS, the 8 x 8 human FER confusion) from the CSV shipped in the package."""
    text = resources.files("auditor.datasets").joinpath(HUMAN_FER_CSV).read_text(encoding="utf-8")
    names, matrix = parse_matrix(text, f"auditor/datasets/{HUMAN_FER_CSV}")
    if names is None or [canonical(n) for n in names] != EXPRESSIONS:
        raise ValueError(f"auditor/datasets/{HUMAN_FER_CSV} must have the header {EXPRESSIONS}")
    return names, matrix


# --------------------------------------------------------------------------- mapping, scaling


def expression_matrix(class_names: list[str], source: tuple[list[str], np.ndarray]) -> np.ndarray:
    """The confusion `source` = (expression names, matrix) restricted to `class_names`, in
    their order, each row renormalised over them (module docstring); UserError naming the
    classes that are not expressions, or expressions named twice."""
    names, matrix = source
    index = {canonical(n): i for i, n in enumerate(names)}
    foreign = [n for n in class_names if canonical(n) not in index]
    if foreign:
        verb = "is not an expression" if len(foreign) == 1 else "are not expressions"
        raise UserError(
            "human-fer noise maps the dataset's classes onto facial expressions by name, and "
            f"{', '.join(map(repr, foreign))} {verb} (it knows {', '.join(EXPRESSIONS)} and the "
            f"synonyms {', '.join(SYNONYMS)}); for other classes use --noise-type matrix "
            "--noise-matrix FILE"
        )
    keys = [canonical(n) for n in class_names]
    twice = [n for n, k in zip(class_names, keys, strict=True) if keys.count(k) > 1]
    if twice:
        raise UserError(
            f"human-fer noise: the classes {', '.join(map(repr, twice))} name the same expression"
        )
    order = [index[k] for k in keys]
    sub = matrix[np.ix_(order, order)]
    return sub / sub.sum(axis=1, keepdims=True)


def scale_to_rate(
    matrix: np.ndarray, labels: np.ndarray, rate: float, *, what: str, class_names: list[str]
) -> tuple[np.ndarray, float, float]:
    """(N, s, native_rate): `matrix` (rows and columns in the order of `class_names`) scaled
    so that the expected flip rate over `labels` equals `rate` (formula in the module
    docstring). UserError, naming `what` (the noise model), when the rate cannot be reached."""
    k = len(matrix)
    off = matrix * (1 - np.eye(k))
    mass = off.sum(axis=1)
    share = np.bincount(labels, minlength=k)[:k] / max(len(labels), 1)
    native = float(share @ mass)
    if rate == 0:
        return np.eye(k), 0.0, native
    if native <= 0:
        raise UserError(
            f"--noise-rate {rate}: {what} cannot flip these labels (no off-diagonal mass in "
            "the rows of the classes present)"
        )
    scale = rate / native
    if scale * mass.max() > 1 + 1e-12:
        reachable = native / mass.max()
        noisiest = class_names[int(mass.argmax())]
        raise UserError(
            f"--noise-rate {rate} is out of reach of {what} on these labels: the scaling keeps "
            f"each class's share of the noise, and the noisiest class, {noisiest} (off-diagonal "
            f"mass {mass.max():.3f}, against {native:.3f} over all labels), flips every label "
            f"at rate {reachable:.4f}; choose --noise-rate at most "
            f"{math.floor(reachable * 1e4) / 1e4:g}"
        )
    used = scale * off
    used[np.diag_indices(k)] = np.clip(1 - scale * mass, 0, 1)
    return used, scale, native


def draw_from_matrix(labels: np.ndarray, matrix: np.ndarray, seed: int) -> np.ndarray:
    """One given label per sample, drawn from the row of its true label: P(given = j) =
    matrix[labels[n], j] (a seeded uniform draw against the row's cumulative sum)."""
    rng = np.random.default_rng(seed)
    cumulative = matrix.cumsum(axis=1)
    # divided by its last value, which becomes exactly 1: a class of probability 0 (an empty
    # interval) is never drawn, not even through rounding
    cumulative /= cumulative[:, -1:]
    draws = rng.random(len(labels))
    return (draws[:, None] >= cumulative[labels]).sum(axis=1).astype(np.int64)


if __name__ == "__main__":  # python -m auditor.datasets.noise_matrix fer2013new.csv
    sys.stdout.write(human_fer_csv(Path(sys.argv[1])))
