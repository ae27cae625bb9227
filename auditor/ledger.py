"""The review ledger: every decision annotators made on a dataset, across rounds of review, so
that round two costs only what is new.

One CSV per dataset beside its runs, `<out>/<dataset>/review-ledger.csv` (a run folder is
`<out>/<dataset>/<run id>/`), with one row per decision recorded:

    sample_id, decision (relabel|keep|drop, or empty: a remark only), label (the class the
    sample ends with: the correction, the given class for keep, empty for drop), given (the
    class it had when decided), run_id (the run reviewed), source (fiftyone:<dataset> or the
    CSV applied), reviewer (`--reviewer`, else $AUDIT_REVIEWER, else the login name), time
    (ISO 8601), note (the annotator's `note:` remarks, "; "-joined)

`audit export --from-fiftyone` and `audit apply` append to it (a row equal in decision, label
and note to the sample's latest is not repeated); rows are never rewritten; a ledger written
before notes were kept (no `note` column) is read with empty notes. The latest row with a
decision is the sample's decision, with its reviewer; the latest non-empty note is its note.
`audit run`, `review` and `export` read it against a run:

    reviewed      the latest decision holds in this run: the sample's given label is the
                  ledger's `label` (keep: unchanged; relabel: the correction was applied)
    not applied   the sample was decided but the run trains on another label (the corrected
                  file was not used) or a dropped sample is back: it is reviewed again
    disagreement  reviewed, relabelled, and flagged again by this run's ensemble: the model
                  disputes the annotator's class
    second look   reviewed and contradicted by this run: kept but flagged again, or relabelled
                  and flagged again with a suggestion other than the annotator's class (the
                  FiftyOne `second-look` view, `audit export --second-look`), shown with the
                  earlier decision, its reviewer and note

Reviewed samples are left out of the suspects (the FiftyOne `suspects` view, `audit export`)
by default; the `reviewed` and `second-look` views hold them.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import getpass
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from auditor.csv_cells import neutralise_cell, restore_cell
from auditor.errors import UserError, shown
from auditor.fsutil import atomic_path, open_lock

LEDGER_NAME = "review-ledger.csv"
COLUMNS = [
    "sample_id",
    "decision",
    "label",
    "given",
    "run_id",
    "source",
    "reviewer",
    "time",
    "note",
]
ADDED_COLUMNS = {"note": ""}  # columns a ledger written before them lacks, read as this
MAX_REVIEWER = 100  # characters


def ledger_path(run_dir: Path) -> Path:
    """The ledger of the dataset whose run folder is `run_dir` (`<out>/<dataset>/<run id>`)."""
    return Path(run_dir).resolve().parent / LEDGER_NAME


def writable_ledger(run_dir: Path, dataset_roots: list[Path | None]) -> Path:
    """`ledger_path(run_dir)`, checked before a command writes anything: a run folder moved
    into a dataset's root (`dataset_roots`: the run's; the registry's and any folder holding a
    dataset's layout are added, `auditor.write_guard.check_own_file`) would put the ledger and
    its lock file there, and a symbolic link in the ledger's place would be written through:
    both are refused (exit 2), naming what to do."""
    from auditor.write_guard import check_own_file

    fix = (
        f"move the run folder {shown(Path(run_dir).name)} out of it (the ledger is kept beside "
        "a dataset's run folders)"
    )
    path = check_own_file(ledger_path(run_dir), "the review ledger", dataset_roots, fix)
    check_own_file(lock_path(path), "the lock file", dataset_roots, fix)
    return path


def lock_path(path: Path) -> Path:
    """The lock file of the ledger at `path` (`exclusive`)."""
    return path.with_name(f".{path.name}.lock")


def read_ledger(path: Path) -> pd.DataFrame:
    """Every row of the ledger at `path` (no rows when it does not exist yet)."""
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS, dtype=str)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise UserError(
            f"review ledger {path} cannot be read ({err}); restore it or move it away"
        ) from err
    frame = frame.assign(**{c: v for c, v in ADDED_COLUMNS.items() if c not in frame.columns})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"review ledger {path} lacks the columns {missing}; restore it or move it away"
        )
    return frame[COLUMNS].map(restore_cell)


def latest(ledger: pd.DataFrame) -> pd.DataFrame:
    """The latest row of each sample, indexed by sample_id."""
    return ledger.drop_duplicates("sample_id", keep="last").set_index("sample_id")


def reviewer_name(given: str | None) -> str:
    """Who decided: `given` (`--reviewer`), else $AUDIT_REVIEWER, else the login name; a name
    must be one line of at most MAX_REVIEWER printable characters."""
    name = given if given is not None else os.environ.get("AUDIT_REVIEWER") or getpass.getuser()
    name = name.strip()
    if not name or len(name) > MAX_REVIEWER or not name.isprintable():
        source = "--reviewer" if given is not None else "AUDIT_REVIEWER"
        raise UserError(
            f"{source} must be a name of 1 to {MAX_REVIEWER} printable characters on one line"
        )
    return name


def append(path: Path, rows: pd.DataFrame, run_id: str, reviewer: str) -> int:
    """Append decisions (`rows` with sample_id, decision, label, given, source and optionally
    note) to the ledger at `path`, stamped with the `reviewer` (`reviewer_name`), the run and
    the time; a row whose decision, label and note equal the sample's latest is not repeated.
    The file is rewritten whole through a temporary name, so a reader never sees half of it.
    Returns the number of rows added."""
    with exclusive(path):
        return append_locked(path, rows, run_id, reviewer)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `<ledger>.lock` (waiting for it): two exports appending at
    once both land. The lock file is never followed if it is a symbolic link, nor truncated
    (`auditor.fsutil.open_lock`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_lock(lock_path(path))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def append_locked(path: Path, rows: pd.DataFrame, run_id: str, reviewer: str) -> int:
    ledger = read_ledger(path)
    before = latest(ledger)
    new = rows.assign(**{c: v for c, v in ADDED_COLUMNS.items() if c not in rows.columns})
    new = new[["sample_id", "decision", "label", "given", "source", "note"]].astype(str)
    keys = ["decision", "label", "note"]
    same = [
        sid in before.index and tuple(before.loc[sid, keys]) == tuple(row)
        for sid, row in zip(new["sample_id"], new[keys].itertuples(index=False), strict=True)
    ]
    new = new[~pd.Series(same, index=new.index, dtype=bool)].assign(
        run_id=run_id,
        reviewer=reviewer,
        time=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    )
    if len(new):
        with atomic_path(path) as tmp:
            pd.concat([ledger, new[COLUMNS]]).map(neutralise_cell).to_csv(tmp, index=False)
    return len(new)


def review_state(samples: pd.DataFrame, ledger: pd.DataFrame) -> pd.DataFrame:
    """Per sample of a run (rows of `samples`: sample_id, given_name, flag_suspicion and, for
    second looks, given_label and suggested_label), from the ledger: `review_decision`,
    `review_label` and `review_reviewer` (of the latest decision, "" when never decided),
    `review_note` (the latest note), `reviewed`, `not_applied`, `disagreement` and
    `second_look` as defined in the module docstring."""
    decided = latest(ledger[ledger["decision"] != ""])
    noted = latest(ledger[ledger["note"] != ""])
    ids = samples["sample_id"]

    def of(rows: pd.DataFrame, column: str) -> pd.Series:
        """Each sample's value in `column` of its row in `rows` ("" without one)."""
        values = rows[column].to_dict()
        return pd.Series([values.get(sid, "") for sid in ids], index=samples.index, dtype=object)

    decision, label = of(decided, "decision"), of(decided, "label")
    holds = (decision != "drop") & (decision != "") & (label == samples["given_name"])
    flagged = samples["flag_suspicion"].astype(bool)
    other_class = (
        samples["suggested_label"] != samples["given_label"]
        if "suggested_label" in samples
        else pd.Series(False, index=samples.index)
    )
    contradicted = (decision == "keep") | ((decision == "relabel") & other_class)
    return pd.DataFrame(
        {
            "review_decision": decision.to_numpy(),
            "review_label": label.to_numpy(),
            "review_reviewer": of(decided, "reviewer").to_numpy(),
            "review_note": of(noted, "note").to_numpy(),
            "reviewed": holds.to_numpy(),
            "not_applied": ((decision != "") & ~holds).to_numpy(),
            "disagreement": (holds & (decision == "relabel") & flagged).to_numpy(),
            "second_look": (holds & flagged & contradicted).to_numpy(),
        },
        index=samples.index,
    )


def state_sentence(state: pd.DataFrame, path: Path) -> str | None:
    """One line for the user about the ledger's hold on a run; None without decisions."""
    decided = int((state["review_decision"] != "").sum())
    if not decided:
        return None
    return (
        f"review ledger {path}: {int(state['reviewed'].sum())} samples already reviewed (left "
        f"out of the suspects), {int(state['disagreement'].sum())} of them relabelled and "
        f"flagged again (disagreements), {int(state['second_look'].sum())} contradicted by "
        f"this run (second looks), {int(state['not_applied'].sum())} decided but not "
        "applied in this run's labels (reviewed again)"
    )


def run_sentence(run_dir: Path, samples: pd.DataFrame) -> str | None:
    """`state_sentence` for the run folder `run_dir` with its `samples` table, when its
    dataset has a ledger."""
    path = ledger_path(run_dir)
    if not path.is_file():
        return None
    return state_sentence(review_state(samples, read_ledger(path)), path)
