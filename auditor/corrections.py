"""`audit export` and `audit apply`: from a run's suspects (or the annotators' decisions) to a
relabel CSV, and from a relabel CSV to a corrected label file in the dataset's own format.
The dataset's own label files are only ever read; both commands record the decisions in the
dataset's review ledger (`auditor.ledger`) and refuse an `--out` that `auditor.write_guard`
forbids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from auditor import ledger
from auditor.datasets.corrected import NOT_LISTED, write_label_file
from auditor.decisions import (
    DECISIONS,
    Decisions,
    corrected_labels,
    keep_own_class,
    read_decisions,
    reviewed_frame,
    suspects_frame,
)
from auditor.errors import UserError
from auditor.outputs.files import write_csv
from auditor.outputs.run_readers import read_run, read_samples
from auditor.write_guard import check_out, run_dataset_root


def export_relabels(
    run_dir: Path,
    *,
    from_fiftyone: bool,
    out: str | Path | None,
    top: int | None,
    include_reviewed: bool = False,
    second_look: bool = False,
    reviewer: str | None = None,
    force: bool = False,
) -> tuple[Path, int, list[str]]:
    """Write a relabel CSV; returns (its path, rows, lines for the user).

    From the scores: the suspects (or the `top` most suspect), less the samples the review
    ledger says were already reviewed unless `include_reviewed`; default `<run>/suspects.csv`
    (`suspects-top<N>.csv` with `top`). With `second_look`: the reviewed samples this run
    contradicts (`ledger.review_state`), with the earlier decision, its reviewer and note;
    default `<run>/second-look.csv`. From FiftyOne: every decided sample with its decision and
    new label, and every sample with a `note:` remark, default `<run>/relabel-reviewed.csv`,
    appended to the ledger under `reviewer` (`ledger.reviewer_name`). The default file is the
    command's own: re-exporting rewrites it; any other existing file needs `force`
    (`auditor.write_guard.check_out`). The three choices exclude one another."""
    run_dir = Path(run_dir)
    chosen = [
        flag
        for flag, on in (
            ("--from-fiftyone", from_fiftyone),
            ("--second-look", second_look),
            ("--top", top is not None),
        )
        if on
    ]
    if len(chosen) > 1:
        raise UserError(
            f"export: {' and '.join(chosen)} choose different samples; give one of them"
        )
    if from_fiftyone:
        reviewer = ledger.reviewer_name(reviewer)  # refused before anything is read
    manifest, _ = read_run(run_dir)
    samples = read_samples(run_dir)
    class_names = manifest["class_names"]
    if from_fiftyone:
        default = "relabel-reviewed.csv"
    elif second_look:
        default = "second-look.csv"
    else:
        default = f"suspects{f'-top{top}' if top else ''}.csv"
    roots = [run_dataset_root(manifest)]
    target = check_out(
        run_dir / default if out is None else out, dataset_roots=roots, own=(default,), force=force
    )
    path = ledger.writable_ledger(run_dir, roots) if from_fiftyone else ledger.ledger_path(run_dir)
    if from_fiftyone:
        from auditor.annotations import read_marks
        from auditor.review import dataset_name, open_dataset
        from auditor.review_marks import marks_from_fiftyone

        dataset = open_dataset(manifest)
        reading = read_marks(
            marks_from_fiftyone(dataset), class_names, f"FiftyOne dataset {dataset.name}"
        )
        frame = reviewed_frame(
            samples,
            class_names,
            manifest["run_id"],
            reading.decided,
            f"fiftyone:{dataset_name(manifest)}",
            reading.notes,
        )
        write_csv(target, frame)
        added = ledger.append(path, ledger_rows(frame), manifest["run_id"], reviewer)
        counts = {d: int((frame["decision"] == d).sum()) for d in DECISIONS}
        counts["touched, undecided"] = len(reading.undecided)
        lines = [
            "decisions: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
            f"review ledger {path}: {added} decisions added",
        ]
        own = [sid for sid, (what, _) in reading.decided.items() if what == "relabel"]
        own = sorted(set(own) & set(frame.loc[frame["decision"] == "keep", "sample_id"]))
        if own:
            lines.append(own_class_sentence(own))
        if reading.undecided:
            lines.append(
                f"touched but undecided (remarks only): {', '.join(reading.undecided[:10])}"
            )
        if not reading.decided and not reading.undecided:
            lines = [
                f"no marks in FiftyOne dataset {dataset.name}: nothing decided, {target.name} "
                "holds only its header (mark samples in the App, then export again)"
            ]
        return target, len(frame), lines
    state = ledger.review_state(samples, ledger.read_ledger(path))
    if second_look:
        frame = second_look_frame(samples, state, class_names, manifest["run_id"])
        write_csv(target, frame)
        return target, len(frame), [f"{len(frame)} reviewed samples contradicted by this run"]
    chosen = samples if include_reviewed else samples[~state["reviewed"].to_numpy()]
    frame = suspects_frame(chosen, class_names, manifest["run_id"], top)
    write_csv(target, frame)
    lines = [line for line in [ledger.state_sentence(state, path)] if line]
    if lines and not include_reviewed:
        lines.append("reviewed samples left out; --include-reviewed exports them too")
    if frame.empty:
        lines.append(
            f"no suspects to export: {target.name} holds only its header"
            + ("" if include_reviewed else " (--include-reviewed exports reviewed ones too)")
        )
    return target, len(frame), lines


def own_class_sentence(samples: list[str]) -> str:
    """What a relabel to the sample's own class became."""
    more = f" and {len(samples) - 10} more" if len(samples) > 10 else ""
    shown = ", ".join(samples[:10]) + more
    return f"{len(samples)} relabels name the sample's own class, read as keep: {shown}"


EARLIER = {  # second-look.csv's columns from `ledger.review_state`
    "earlier_decision": "review_decision",
    "earlier_label": "review_label",
    "reviewer": "review_reviewer",
    "note": "review_note",
}


def second_look_frame(
    samples: pd.DataFrame, state: pd.DataFrame, class_names: list[str], run_id: str
) -> pd.DataFrame:
    """The second looks (`state["second_look"]`) as relabel rows, most suspect first, with the
    earlier decision, its label, reviewer and note (`EARLIER`); the `note` column carries on
    into the ledger when the CSV is applied."""
    chosen = state["second_look"].to_numpy()
    frame = suspects_frame(samples[chosen], class_names, run_id, None)
    earlier = state[chosen].set_index(samples.loc[chosen, "sample_id"].to_numpy())
    return frame.assign(**{c: frame["sample_id"].map(earlier[k]) for c, k in EARLIER.items()})


def ledger_rows(reviewed: pd.DataFrame) -> pd.DataFrame:
    """Rows of a reviewed relabel frame (`reviewed_frame`) in the ledger's terms."""
    return pd.DataFrame(
        {
            "sample_id": reviewed["sample_id"],
            "decision": reviewed["decision"],
            "label": reviewed["new_name"],
            "given": reviewed["given_name"],
            "source": reviewed["source"],
            "note": reviewed["note"],
        }
    )


def decision_rows(
    decisions: Decisions, samples: pd.DataFrame, class_names: list[str], source: Path
) -> pd.DataFrame:
    """The decisions of a relabel CSV in the ledger's terms (`ledger.append`)."""
    given = samples.set_index("sample_id")["given_name"]
    rows = [(sid, "relabel", class_names[label]) for sid, label in decisions.relabel.items()]
    rows += [(sid, "keep", given[sid]) for sid in sorted(decisions.keep)]
    rows += [(sid, "drop", "") for sid in sorted(decisions.drop)]
    decided = {sid for sid, _, _ in rows}
    rows += [(sid, "", "") for sid in sorted(decisions.notes) if sid not in decided]  # remarks
    frame = pd.DataFrame(rows, columns=["sample_id", "decision", "label"])
    return frame.assign(
        given=frame["sample_id"].map(given),
        source=str(Path(source).resolve()),
        note=[decisions.notes.get(sid, "") for sid in frame["sample_id"]],
    )


def apply_relabels(
    run_dir: Path,
    relabels: Path,
    out: str | Path,
    *,
    reviewer: str | None = None,
    force: bool = False,
) -> dict:
    """Write the corrected label file for the run's dataset: every sample of the dataset with
    its given label (as the run trained on it), the decisions applied, dropped samples left out;
    the decisions (and the CSV's `note` cells) are appended to the review ledger under `reviewer`
    (`ledger.reviewer_name`). `out` must pass
    `auditor.write_guard.check_out` (an existing file only with `force`). Returns counts."""
    run_dir = Path(run_dir)
    reviewer = ledger.reviewer_name(reviewer)
    manifest, _ = read_run(run_dir)
    labels_file = manifest.get("config", {}).get("labels")
    roots = [run_dataset_root(manifest)]
    target = check_out(out, dataset_roots=roots, labels_file=labels_file, force=force)
    ledger_file = ledger.writable_ledger(run_dir, roots)
    samples = read_samples(run_dir)
    class_names = manifest["class_names"]
    given = samples.set_index("sample_id")["given_label"]
    decisions = read_decisions(relabels, samples["sample_id"].tolist(), class_names)
    decisions, own = keep_own_class(decisions, given)

    from auditor.datasets import load_for_run

    entry, table = load_for_run(manifest)
    row_of = {sid: i for i, sid in enumerate(table.sample_ids.tolist())}
    absent = [sid for sid in samples["sample_id"] if sid not in row_of]
    if absent:
        raise UserError(
            f"{len(absent)} samples of run {manifest['run_id']} are no longer in {entry.name} "
            f"(e.g. {absent[:3]}); the dataset changed since the run"
        )
    labels = table.labels.copy()
    corrected = corrected_labels(given, decisions)
    rows = np.array([row_of[sid] for sid in given.index])
    labels[rows] = NOT_LISTED
    labels[[row_of[sid] for sid in corrected.index]] = corrected.to_numpy()
    written = write_label_file(target, table, labels, entry.kind)
    changed = int(sum(given[sid] != label for sid, label in decisions.relabel.items()))
    added = ledger.append(
        ledger_file,
        decision_rows(decisions, samples, class_names, relabels),
        manifest["run_id"],
        reviewer,
    )
    own_class = {"relabels to their own class, read as keep": len(own)} if own else {}
    return (
        decisions.counts()
        | own_class
        | {"changed": changed, "rows_written": written, "ledger_added": added}
    )
