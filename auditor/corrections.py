"""`audit export` and `audit apply`: from a run's suspects (or the annotators' decisions) to a
relabel CSV, and from a relabel CSV to a corrected label file in the dataset's own format.
The dataset's own label files are only ever read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auditor.datasets.corrected import NOT_LISTED, write_label_file
from auditor.decisions import corrected_labels, read_decisions, reviewed_frame, suspects_frame
from auditor.errors import UserError
from auditor.outputs.files import write_csv
from auditor.outputs.run_folder import read_run, read_samples


def export_relabels(
    run_dir: Path, *, from_fiftyone: bool, out: Path | None, top: int | None
) -> tuple[Path, int]:
    """Write the relabel CSV; returns (its path, rows). From the scores: the suspects (or the
    `top` most suspect), default `<run>/relabel.csv`. From FiftyOne: every decided sample with
    its decision and new label, default `<run>/relabel-reviewed.csv`."""
    run_dir = Path(run_dir)
    manifest, _ = read_run(run_dir)
    samples = read_samples(run_dir)
    class_names = manifest["class_names"]
    if from_fiftyone:
        from auditor.review import dataset_name, decisions_from_fiftyone, open_dataset

        decided = decisions_from_fiftyone(open_dataset(manifest), class_names)
        frame = reviewed_frame(
            samples, class_names, manifest["run_id"], decided, f"fiftyone:{dataset_name(manifest)}"
        )
        target = out or run_dir / "relabel-reviewed.csv"
    else:
        frame = suspects_frame(samples, class_names, manifest["run_id"], top)
        target = out or run_dir / "relabel.csv"
    write_csv(Path(target), frame)
    return Path(target), len(frame)


def check_not_original(out: Path, root: Path | None, labels_file: str | None) -> None:
    """Refuse an `--out` that would overwrite a file of the dataset (anything existing under its
    root) or the label file the run trained on."""
    target = Path(out).resolve()
    if labels_file and target == Path(labels_file).resolve():
        raise UserError(f"--out {out} is the label file the run trained on; write to a new file")
    if root is not None and target.exists() and target.is_relative_to(Path(root).resolve()):
        raise UserError(
            f"--out {out} would overwrite a file of the dataset under {root}; "
            "the original labels are never modified: write to a new file"
        )


def apply_relabels(run_dir: Path, relabels: Path, out: Path) -> dict:
    """Write the corrected label file for the run's dataset: every sample of the dataset with
    its given label (as the run trained on it), the decisions applied, dropped samples left out.
    Returns counts."""
    run_dir = Path(run_dir)
    manifest, _ = read_run(run_dir)
    samples = read_samples(run_dir)
    class_names = manifest["class_names"]
    decisions = read_decisions(relabels, samples["sample_id"].tolist(), class_names)

    from auditor.datasets import load_for_run

    entry, table = load_for_run(manifest)
    config = manifest["config"]
    check_not_original(out, entry.resolve_root(config.get("root")), config.get("labels"))
    row_of = {sid: i for i, sid in enumerate(table.sample_ids.tolist())}
    absent = [sid for sid in samples["sample_id"] if sid not in row_of]
    if absent:
        raise UserError(
            f"{len(absent)} samples of run {manifest['run_id']} are no longer in {entry.name} "
            f"(e.g. {absent[:3]}); the dataset changed since the run"
        )
    labels = table.labels.copy()
    given = samples.set_index("sample_id")["given_label"]
    corrected = corrected_labels(given, decisions)
    rows = np.array([row_of[sid] for sid in given.index])
    labels[rows] = NOT_LISTED
    labels[[row_of[sid] for sid in corrected.index]] = corrected.to_numpy()
    written = write_label_file(Path(out), table, labels, entry.kind)
    changed = int(sum(given[sid] != label for sid, label in decisions.relabel.items()))
    return decisions.counts() | {"changed": changed, "rows_written": written}
