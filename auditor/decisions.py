"""Annotators' decisions on suspected mislabels: the relabel CSV read back, validated, and
turned into corrected labels.

A decision is `relabel` (to the row's `new_name`, else `suggested_name`, else
`suggested_label`), `keep` (the given label was right) or `drop` (leave the sample out);
an empty decision leaves the sample as it is. Rows naming unknown samples, unknown classes or
unknown decisions are refused, naming their lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.csv_cells import restore_cell
from auditor.datasets.label_cells import class_id
from auditor.datasets.labelfile import read_csv_rows
from auditor.errors import UserError
from auditor.outputs.tables import RELABEL_COLUMNS, relabel_frame

DECISIONS = ("relabel", "keep", "drop")
REVIEWED_COLUMNS = [*RELABEL_COLUMNS, "new_label", "new_name", "source", "note"]


@dataclass(frozen=True)
class Decisions:
    relabel: dict[str, int]  # sample_id -> the corrected label
    keep: frozenset[str]
    drop: frozenset[str]
    notes: dict[str, str] = field(default_factory=dict)  # sample_id -> its `note` cell

    def counts(self) -> dict[str, int]:
        return {"relabel": len(self.relabel), "keep": len(self.keep), "drop": len(self.drop)}


def read_decisions(path: Path, sample_ids: list[str], class_names: list[str]) -> Decisions:
    """Parse a relabel CSV (from `audit export` or edited by hand) against the run's samples."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--relabels {path} does not exist")
    frame, lines = read_csv_rows(path, ["sample_id", "decision"])
    frame = frame.map(restore_cell)
    known = set(sample_ids)
    problems: list[str] = []
    seen: dict[str, int] = {}
    relabel: dict[str, int] = {}
    keep: set[str] = set()
    drop: set[str] = set()
    notes: dict[str, str] = {}
    for line, row in zip(lines, frame.to_dict("records"), strict=True):
        sid, decision = row["sample_id"].strip(), row["decision"].strip().lower()
        if sid not in known:
            problems.append(f"line {line}: unknown sample_id {sid!r}")
            continue
        if sid in seen:
            problems.append(f"line {line}: {sid!r} already decided on line {seen[sid]}")
            continue
        seen[sid] = line
        if str(row.get("note", "")).strip():
            notes[sid] = str(row["note"]).strip()
        if decision == "":
            continue
        if decision not in DECISIONS:
            problems.append(f"line {line}: decision {decision!r} is not one of {DECISIONS}")
        elif decision == "relabel":
            target = relabel_target(row, class_names)
            if isinstance(target, str):
                problems.append(f"line {line}: relabel {sid!r}: {target}")
            else:
                relabel[sid] = target
        else:
            (keep if decision == "keep" else drop).add(sid)
    if problems:
        shown = "; ".join(problems[:8]) + (
            f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        )
        raise UserError(
            f"{path}: {len(problems)} rows refused ({shown}); classes are {class_names}"
        )
    return Decisions(relabel, frozenset(keep), frozenset(drop), notes)


def relabel_target(row: dict, class_names: list[str]) -> int | str:
    """The class a `relabel` row asks for: the annotator's own `new_name` / `new_label` first
    (they must agree when both are filled), else the tool's `suggested_name`, else
    `suggested_label`. A string says why there is none."""
    for columns in (("new_name", "new_label"), ("suggested_name", "suggested_label")):
        named = {c: str(row.get(c, "")).strip() for c in columns}
        named = {c: text for c, text in named.items() if text}
        found = {c: class_of(c, text, class_names) for c, text in named.items()}
        unknown = [f"{c} {named[c]!r} is not a class" for c, k in found.items() if k is None]
        if unknown:
            return "; ".join(unknown)
        if len(set(found.values())) > 1:
            return " and ".join(f"{c} {named[c]!r}" for c in found) + " disagree"
        if found:
            return next(iter(found.values()))
    return "no class to relabel to (fill new_name)"


def class_of(column: str, text: str, class_names: list[str]) -> int | None:
    """The class `text` names: a class name in *_name columns (`match_class`), an id in *_label
    columns."""
    if column.endswith("_name"):
        return match_class(text, class_names)
    return class_id(text, len(class_names))


def match_class(text: str, class_names: list[str]) -> int | None:
    """The index of class `text`, the one rule for every place a person names a class (FiftyOne
    tags and `corrected`, relabel CSVs): an exact match, else the only case-insensitive one;
    None when there is neither (or several case-insensitive ones)."""
    text = text.strip()
    if text in class_names:
        return class_names.index(text)
    folded = [i for i, name in enumerate(class_names) if name.casefold() == text.casefold()]
    return folded[0] if len(folded) == 1 else None


def keep_own_class(decisions: Decisions, given: pd.Series) -> tuple[Decisions, list[str]]:
    """`decisions` with every relabel to the sample's own given class (`given`: sample_id ->
    given label) read as a keep, and those samples: a relabel that changes nothing is a keep."""
    own = sorted(sid for sid, label in decisions.relabel.items() if given[sid] == label)
    relabel = {sid: label for sid, label in decisions.relabel.items() if sid not in own}
    return Decisions(relabel, decisions.keep | frozenset(own), decisions.drop, decisions.notes), own


def corrected_labels(given: pd.Series, decisions: Decisions) -> pd.Series:
    """Given labels (indexed by sample_id) with the decisions applied; dropped samples removed."""
    out = given.copy()
    for sid, label in decisions.relabel.items():
        out[sid] = label
    return out.drop(index=list(decisions.drop))


def suspects_frame(
    samples: pd.DataFrame, class_names: list[str], run_id: str, top: int | None
) -> pd.DataFrame:
    """The suspects for annotators, most suspect first: the samples the ensemble flags, or
    with `top` the `top` most suspect samples whether flagged or not."""
    selected = None
    if top is not None:
        chosen = samples.sort_values("suspicion", ascending=False, kind="stable").head(top)
        selected = samples.index.isin(chosen.index)
    return relabel_frame(samples, class_names, run_id, selected)


def reviewed_frame(
    samples: pd.DataFrame,
    class_names: list[str],
    run_id: str,
    decided: dict[str, tuple[str, int | None]],
    source: str,
    notes: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Decided samples, and samples with a note (`notes`: sample_id -> remark), as relabel rows
    with their decision (empty for a remark only), the label they end with (`new_label`: the
    correction, the given label for `keep`, empty for `drop`), where the decision came from and
    the note. `decided` maps sample_id -> (decision, corrected label or None for the
    suggestion); a relabel to the sample's own given class is written as a keep."""
    notes = notes or {}
    selected = samples["sample_id"].isin([*decided, *notes]).to_numpy()
    frame = relabel_frame(samples, class_names, run_id, selected)
    names = np.array(class_names, dtype=object)
    decision, new_label = [], []
    for sid, given, suggested in zip(
        frame["sample_id"], frame["given_label"], frame["suggested_label"], strict=True
    ):
        what, corrected = decided.get(sid, ("", None))
        new = {"relabel": suggested if corrected is None else corrected, "keep": given}.get(what)
        if what == "relabel" and new == given:  # a relabel that changes nothing
            what = "keep"
        decision.append(what)
        new_label.append(pd.NA if new is None else int(new))
    frame["decision"] = decision
    frame["new_label"] = pd.array(new_label, dtype="Int64")
    frame["new_name"] = [names[v] if v is not pd.NA else "" for v in new_label]
    frame["source"] = source
    frame["note"] = [notes.get(sid, "") for sid in frame["sample_id"]]
    return frame[REVIEWED_COLUMNS]
