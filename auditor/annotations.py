"""What annotators marked on samples in FiftyOne, read as decisions: every mark either becomes
exactly one decision or is refused with a sentence naming the sample and what to do.

An annotator can mark a sample in four ways, all read here:

- a sample tag: `relabel`, `keep` or `drop` (any case, surrounding spaces ignored);
- a label tag (the App's "label tags" mode) on any label of the sample (`given`, `prediction`,
  `suggested`, `truth`, `corrected`, a heatmap...): the same words, read as if on the sample;
- a `label:<class>` tag, on the sample or a label: the class to relabel to;
- the `corrected` classification: the class to relabel to.

The decision of a sample, from the set D of decision words it carries and the set T of classes
it names (`corrected`, `label:` tags, and the label of a non-`given` field tagged `relabel`):

    |D| > 1 or |T| > 1                   -> refused (a conflict, both named)
    D = {relabel}                        -> relabel to the one class in T, else to the suggestion
    D = {} and T = {c}                   -> relabel to c (a correction is a decision)
    D = {keep}, T in ({}, {given})       -> keep;   keep with another class -> refused
    D = {drop}, T = {}                   -> drop;   drop with a class -> refused

A relabel to the sample's own given class changes nothing: it is exported as a keep, and
`audit export` says which samples (`auditor.decisions.reviewed_frame`).

A class is matched to the run's class names exactly, else case-insensitively when that is
unambiguous; an unknown class is refused as such. Tags starting with `note:` are remarks: they
decide nothing, and a sample carrying only remarks is counted as touched but undecided; their
text (`Reading.notes`) goes into the exported CSV, the review ledger and the next round's
dataset. Any other tag is refused (a misspelt decision must not vanish).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.decisions import DECISIONS, match_class
from auditor.errors import UserError

LABEL_TAG = "label:"
NOTE_TAG = "note:"


@dataclass(frozen=True)
class Marks:
    """Everything an annotator can have set on one sample."""

    sample_id: str
    given: str  # the given class name
    sample_tags: tuple[str, ...] = ()
    label_tags: dict[str, tuple[str, ...]] = field(default_factory=dict)  # label field -> tags
    field_labels: dict[str, str] = field(default_factory=dict)  # label field -> its class
    corrected: str | None = None


@dataclass(frozen=True)
class Reading:
    """Decisions read from annotators' marks: sample_id -> (decision, class index or None for
    "the suggestion"), the samples touched (remarks only) but undecided, and the remarks of
    every sample that has any (`notes`)."""

    decided: dict[str, tuple[str, int | None]]
    undecided: tuple[str, ...]
    notes: dict[str, str] = field(default_factory=dict)


def notes_of(marks: Marks) -> str:
    """The sample's `note:` remarks (sample and label tags), each without its prefix, in the
    order found, repeats once, "; "-joined; "" without any."""
    tags = [*marks.sample_tags, *(t for tags in marks.label_tags.values() for t in tags)]
    found = [t.strip()[len(NOTE_TAG) :].strip() for t in tags]
    found = [
        n
        for t, n in zip(tags, found, strict=True)
        if t.strip().casefold().startswith(NOTE_TAG) and n
    ]
    return "; ".join(dict.fromkeys(found))


def decide(marks: Marks, class_names: list[str]) -> tuple[str, int | None] | str | None:
    """One sample's decision (as in `Reading.decided`), None when it carries no decision, or a
    string saying why it is refused. Rules in the module docstring."""
    decisions: set[str] = set()
    targets: dict[int, str] = {}  # class index -> where it was named
    problems: list[str] = []
    tagged = [(None, t) for t in marks.sample_tags]
    tagged += [(f, t) for f, tags in marks.label_tags.items() for t in tags]
    for label_field, tag in tagged:
        where = "sample tag" if label_field is None else f"tag on `{label_field}`"
        word = tag.strip().casefold()
        if word in DECISIONS:
            decisions.add(word)
            relabel_to = marks.field_labels.get(label_field)  # type: ignore[arg-type]
            if word == "relabel" and label_field != "given" and relabel_to is not None:
                name_target(relabel_to, f"`relabel` {where}", class_names, targets, problems)
        elif word.startswith(LABEL_TAG):
            named = tag.strip()[len(LABEL_TAG) :]
            name_target(named, f"{where} {tag!r}", class_names, targets, problems)
        elif not word.startswith(NOTE_TAG):
            problems.append(
                f"{where} {tag!r} is not a decision: use relabel, keep, drop or label:<class>, "
                f"or start a remark with {NOTE_TAG!r}"
            )
    if marks.corrected is not None:
        name_target(marks.corrected, "`corrected`", class_names, targets, problems)
    if len(decisions) > 1:
        problems.append(f"tagged {' and '.join(d for d in DECISIONS if d in decisions)}")
    if len(targets) > 1:
        problems.append(
            "names two classes: "
            + " and ".join(f"{class_names[c]!r} ({where})" for c, where in targets.items())
        )
    if problems:
        return "; ".join(problems)
    target = next(iter(targets), None)
    decision = next(iter(decisions), None)
    if decision is None:
        return None if target is None else ("relabel", target)
    if decision == "keep" and target is not None and class_names[target] != marks.given:
        return (
            f"tagged keep but names class {class_names[target]!r} ({targets[target]}): "
            "relabel, or clear it"
        )
    if decision == "drop" and target is not None:
        return (
            f"tagged drop but names class {class_names[target]!r} ({targets[target]}): "
            "relabel, or clear it"
        )
    return decision, target if decision == "relabel" else None


def name_target(
    text: str, where: str, class_names: list[str], targets: dict[int, str], problems: list[str]
) -> None:
    """Record class `text` named by `where`, or the problem when it is not a class."""
    index = match_class(text, class_names)
    if index is None:
        problems.append(f"{where}: {text.strip()!r} is not a class")
    else:
        targets.setdefault(index, where)


def read_marks(all_marks: list[Marks], class_names: list[str], source: str) -> Reading:
    """Every sample's decision; refuses them all at once (naming up to 8 samples and what to do)
    when any is refused, so nothing is half-exported."""
    decided: dict[str, tuple[str, int | None]] = {}
    undecided: list[str] = []
    problems: list[str] = []
    for marks in all_marks:
        outcome = decide(marks, class_names)
        if isinstance(outcome, str):
            problems.append(f"{marks.sample_id}: {outcome}")
        elif outcome is not None:
            decided[marks.sample_id] = outcome
        elif marks.sample_tags or any(marks.label_tags.values()):
            undecided.append(marks.sample_id)
    if problems:
        shown = "; ".join(problems[:8]) + (
            f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        )
        raise UserError(
            f"{source}: {len(problems)} samples are marked in a way that is not one decision, "
            f"fix them in the App and export again: {shown}. Classes are {class_names}"
        )
    notes = {m.sample_id: notes_of(m) for m in all_marks}
    return Reading(decided, tuple(undecided), {sid: n for sid, n in notes.items() if n})
