"""A run's per-sample results written back into the FiftyOne dataset its samples came from
(dataset kind `fiftyone`, `auditor.fiftyone_source`), every field and saved view under one
prefix (default `audit_`), the dataset's own fields (its label field first) untouched.

The fields are the ones `audit review` gives its own datasets (`auditor.review.fiftyone_samples`:
`suspicion`, `suggested` and `prediction` with their logits, `detector_votes`, every
`score_<detector>` and `flag_<detector>` (the evidence; `flag_suspicion`: flagged by the
ensemble), and the review ledger's `reviewed`, `review_decision`...), each as `<prefix><name>`,
plus `<prefix>run_id`. Saved views: `<prefix>suspects` (flagged, most suspect first) and
`<prefix>top-<detector>` (the k most suspect of each detector `audit review` gives a `top-`
view: the ensemble's members; k = the number flagged). The dataset's `info["audit"]` names the
run folder and records the fields and views written: a re-run first deletes those, so samples
a new selection leaves out keep nothing stale, and nothing else; a field of the user's own
under the prefix is refused before the run (`auditor.fiftyone_source.foreign_fields`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from auditor import ledger
from auditor.detectors.votes import top_view_detectors
from auditor.fiftyone_setup import F, fo
from auditor.fiftyone_source import INFO, NOTES, written_by_audit
from auditor.outputs.run_readers import read_run, read_samples
from auditor.review import fiftyone_samples

# the fields of `fiftyone_samples` a source dataset already has, in its own terms
SKIPPED = {"id", "filepath", "tags", "metadata", "media_type", "audit_id", "given"}
SKIPPED |= {"created_at", "last_modified_at"}


def result_fields(run_dir: Path, manifest: dict, samples: pd.DataFrame) -> dict[str, list[Any]]:
    """{field name: one value per row of `samples`}, from the fields `audit review` sets."""
    state = ledger.review_state(samples, ledger.read_ledger(ledger.ledger_path(run_dir)))
    made = fiftyone_samples(
        samples,
        manifest["class_names"],
        samples["filepath"].tolist(),
        manifest["run_id"],
        state,
    )
    columns: dict[str, list[Any]] = {}
    for n, sample in enumerate(made):
        for name in sample.field_names:
            if name not in SKIPPED:
                columns.setdefault(name, [None] * len(samples))[n] = sample[name]
    return columns


def write_back(run_dir: Path) -> fo.Dataset:
    """Write the results of the complete run at `run_dir` into its FiftyOne source dataset."""
    manifest, metrics = read_run(run_dir)
    samples = read_samples(run_dir)
    source = manifest["dataset_notes"][NOTES]
    prefix = source["prefix"]
    dataset = fo.load_dataset(source["dataset"])
    columns = result_fields(run_dir, manifest, samples)
    clear(dataset)
    chosen = dataset.select(samples["sample_id"].tolist(), ordered=True)
    written = []
    for name, values in columns.items():
        if any(v is not None for v in values):  # a field no sample has a value for is left out
            chosen.set_values(prefix + name, values)
            written.append(prefix + name)
    views = save_views(dataset, samples, prefix, top_view_detectors(samples, metrics))
    dataset.info[INFO] = {
        "run_dir": str(Path(run_dir).resolve()),
        "run_id": manifest["run_id"],
        "label_field": source["label_field"],
        "prefix": prefix,
        "fields": written,
        "views": views,
    }
    dataset.save()
    return dataset


def clear(dataset: fo.Dataset) -> None:
    """Delete the fields and saved views an earlier audit wrote (`written_by_audit`)."""
    fields, views = written_by_audit(dataset)
    present = [f for f in fields if f in dataset.get_field_schema()]
    if present:
        dataset.delete_sample_fields(present)
    for name in views:
        if name in dataset.list_saved_views():
            dataset.delete_saved_view(name)


def save_views(
    dataset: fo.Dataset, samples: pd.DataFrame, prefix: str, detectors: list[str]
) -> list[str]:
    """`<prefix>suspects` and `<prefix>top-<detector>` (see the module docstring); their names."""
    k = max(int(samples["flag_suspicion"].sum()), 1)
    suspicion = prefix + "suspicion"
    dataset.save_view(
        f"{prefix}suspects",
        dataset.match(F(prefix + "flag_suspicion")).sort_by(suspicion, reverse=True),
        description="Flagged by the audit's ensemble, most suspect first",
    )
    names = [f"{prefix}suspects"]
    schema = dataset.get_field_schema()
    for detector in detectors:
        column = f"score_{detector}"
        if prefix + column not in schema:  # no sample had a score of it: nothing written
            continue
        dataset.save_view(
            f"{prefix}top-{detector}",
            dataset.exists(prefix + column).sort_by(prefix + column, reverse=True).limit(k),
            description=f"The {k} samples {detector} finds most suspect, flagged or not",
        )
        names.append(f"{prefix}top-{detector}")
    return names
