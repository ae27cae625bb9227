"""FERPlus (Barsoum et al., ICMI 2016): FER2013's 48x48 grayscale faces with ten crowd votes each.

Files under the root:

    fer2013.csv      FER2013: `emotion,pixels,Usage` (2304 space-separated grey levels; labels
                     0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral)
    fer2013new.csv   FER+ votes, same rows in the same order: `Usage,Image name,neutral,
                     happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF`

Classes in FER+'s column order: neutral, happiness, surprise, sadness, anger, disgust, fear and,
with `classes: 8`, contempt. Splits follow `Usage`: Training -> train, PrivateTest -> test
(the papers' test set), PublicTest -> val (kept in the table, used by no run).

The plurality rule (`majority`): over all ten vote columns, a row keeps the label whose count
is strictly the largest; a row is dropped when that maximum is shared (a tie), when it falls on
`unknown` or `NF`, or, with 7 classes, on contempt. Label protocols (`protocol`):
- `majority`: given = plurality; truth unknown (it is the papers' protocol, not a noise test).
- `annotator`: given = one tagger's vote, drawn with the run's seed in proportion to the row's
  votes over the kept classes; truth = plurality. Real human disagreement (~21%).
- `fer2013`: given = FER2013's original label mapped to FER+'s classes; truth = plurality.
Under `annotator` and `fer2013` the test rows keep their plurality labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.datasets.kinds import DatasetKind, register_kind
from auditor.datasets.label_cells import LabelReader
from auditor.datasets.labelfile import int_column, quotable, read_csv_rows
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import ArrayImages, SampleTable
from auditor.errors import UserError

EMOTIONS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
VOTE_COLUMNS = EMOTIONS + ["unknown", "NF"]
# FER2013 label id -> FER+ class index (Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral)
FER2013_TO_FERPLUS = np.array([4, 5, 6, 1, 3, 2, 0])
SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
PROTOCOLS = ("majority", "annotator", "fer2013")


@dataclass
class FerplusLabels:
    keep: np.ndarray  # [rows] bool: the plurality rule kept the row
    plurality: np.ndarray  # [rows] int, -1 where dropped
    dropped: dict[str, int]  # reason -> rows


def plurality_labels(votes: np.ndarray, num_classes: int) -> FerplusLabels:
    """The plurality rule of the module docstring on vote counts [rows, 10]."""
    top = votes.max(axis=1)
    winners = (votes == top[:, None]).sum(axis=1)
    arg = votes.argmax(axis=1)
    tie = winners > 1
    not_emotion = ~tie & (arg >= len(EMOTIONS))  # unknown or NF
    excluded = ~tie & ~not_emotion & (arg >= num_classes)  # contempt with 7 classes
    no_votes = top == 0
    keep = ~(tie | not_emotion | excluded | no_votes)
    dropped = {
        "tie": int((tie & ~no_votes).sum()),
        "unknown_or_NF": int(not_emotion.sum()),
        "contempt": int(excluded.sum()),
        "no_votes": int(no_votes.sum()),
    }
    return FerplusLabels(keep, np.where(keep, arg, -1), dropped)


def annotator_votes(votes: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """One tagger's vote per row, drawn in proportion to the row's votes over the kept classes
    (rows with none of those votes get -1)."""
    rng = np.random.default_rng(seed)
    counts = votes[:, :num_classes].astype(np.float64)
    total = counts.sum(axis=1)
    cumulative = counts.cumsum(axis=1)
    draw = rng.random(len(votes)) * total
    choice = (draw[:, None] >= cumulative).sum(axis=1)
    return np.where(total > 0, np.minimum(choice, num_classes - 1), -1)


def read_votes(path: Path, quote: bool = True) -> pd.DataFrame:
    """FER+'s fer2013new.csv: Usage and the ten vote counts (integers) of every row (errors
    quote its text when `quote`)."""
    frame, lines = read_csv_rows(path, ["Usage", *VOTE_COLUMNS], quote=quote)
    for column in VOTE_COLUMNS:
        frame[column] = int_column(frame[column], lines, path, column, quote=quote)
    return frame


def read_fer2013(path: Path, quote: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels [rows], pixels uint8 [rows, 48, 48], usage [rows]) of FER2013's CSV (errors
    quote its text when `quote`)."""
    frame, lines = read_csv_rows(path, ["emotion", "pixels", "Usage"], quote=quote)
    labels = LabelReader(path, 7, quote=quote).read_column(frame["emotion"].tolist(), lines)
    pixels = np.empty((len(frame), 48, 48), dtype=np.uint8)
    for i, text in enumerate(frame["pixels"]):
        try:
            values = np.array(text.split(), dtype=np.int64)
        except (ValueError, OverflowError):
            values = np.array([-1])
        if values.size != 48 * 48 or values.min() < 0 or values.max() > 255:
            raise UserError(f"{path}, line {lines[i]}: expected 2304 grey levels 0..255")
        pixels[i] = values.reshape(48, 48)
    return labels, pixels, frame["Usage"].to_numpy(str)


def files(root: Path | None) -> tuple[Path, Path] | None:
    if root is None:
        return None
    pair = (root / "fer2013.csv", root / "fer2013new.csv")
    return pair if all(p.is_file() for p in pair) else None


def status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    found = files(root)
    return (
        (True, f"{found[0].stat().st_size / 1e6:.0f} MB")
        if found
        else (False, "fer2013.csv or fer2013new.csv missing")
    )


def load(entry: DatasetEntry, root: Path | None, *, seed: int = 0) -> SampleTable:
    protocol = entry.options.get("protocol", "majority")
    num_classes = entry.options.get("classes_count", 8)
    if protocol not in PROTOCOLS or num_classes not in (7, 8):
        raise UserError(
            f"{entry.where()}: `protocol` must be one of {PROTOCOLS} and `classes_count` 7 or 8"
        )
    found = files(root)
    if found is None:
        raise UserError(
            f"FERPlus not found at {root or '<root>'}. The ferplus loader needs, in one folder:\n"
            "  fer2013.csv     FER2013's images (columns emotion,pixels,Usage), from the FER2013 "
            "release\n"
            "  fer2013new.csv  FER+'s votes, from github.com/microsoft/FERPlus\n"
            f"Point at the folder: {entry.root_hint()}."
        )
    fer_labels, pixels, usage = read_fer2013(found[0], quotable(found[0], root))
    votes_frame = read_votes(found[1], quotable(found[1], root))
    if len(votes_frame) != len(fer_labels):
        raise UserError(
            f"{found[1]} has {len(votes_frame)} rows, {found[0]} has {len(fer_labels)}: they must "
            "match row for row"
        )
    votes = votes_frame[VOTE_COLUMNS].to_numpy(np.int64)
    plural = plurality_labels(votes, num_classes)
    split = np.array([SPLITS.get(u, "val") for u in votes_frame["Usage"].astype(str)])
    given, true = plural.plurality.copy(), None
    extra = {"protocol": protocol, "dropped": plural.dropped}
    if protocol != "majority":
        true = plural.plurality.copy()
        if protocol == "annotator":
            drawn = annotator_votes(votes, num_classes, seed)
        else:
            drawn = FER2013_TO_FERPLUS[fer_labels]
        train = split == "train"
        given = np.where(train, drawn, plural.plurality)
        usable = given >= 0
        extra["dropped"] = plural.dropped | {
            "no_usable_given_label": int((plural.keep & ~usable).sum())
        }
        keep = plural.keep & usable
    else:
        keep = plural.keep
    rows = np.flatnonzero(keep)
    return SampleTable(
        name=entry.name,
        class_names=EMOTIONS[:num_classes],
        sample_ids=np.array([f"{split[i]}-{i:05d}" for i in rows]),
        filepaths=np.array([f"{found[0]}#{i}" for i in rows]),
        labels=given[rows].astype(np.int64),
        split=split[rows],
        images=ArrayImages(pixels[rows]),
        true_labels=None if true is None else true[rows].astype(np.int64),
        truth_source=None if true is None else f"ferplus-{protocol}",
        extra=extra,
    )


register_kind(
    DatasetKind(
        name="ferplus",
        load=load,
        status=status,
        reads_seed=True,
        options={"protocol": str, "classes_count": int},
    )
)
