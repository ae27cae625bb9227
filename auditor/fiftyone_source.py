"""A FiftyOne dataset as the samples of `audit run`: the dataset kind `fiftyone`.

    audit run fiftyone --fiftyone-dataset faces --label-field ground_truth [--tags a,b]
        [--fiftyone-view NAME]
    auditor.api.audit(fo_dataset_or_view, label_field="ground_truth")

The loader reads each selected sample's FiftyOne id (the run's sample id), its `filepath` and
the class of its label field, which must be a classification field (`fo.Classification`);
every selected sample is a training sample (a validation split is held out as for any dataset
without a test split). It refuses, before anything trains: an unknown dataset or saved view,
a label field that is missing or not a classification, samples without a label, image files
that are not there, and fields of the user's own under the results' prefix (a re-run replaces
what is there). Class names: the dataset's `classes` of the field, else its
`default_classes`, else the sorted labels found.

What selects the samples and where the results go are the kind's options (`SOURCE_KEYS`): the
`--fiftyone-*`, `--label-field` and `--tags` flags, a view's stages given from Python, or the
same keys in a registry entry of kind `fiftyone`. The table's `extra` (the manifest's
`dataset_notes`) records them, so a resumed run reads the same samples and the results are
written back (`auditor.fiftyone_results`) into the dataset they came from. FiftyOne itself is
imported only when a dataset is loaded (`auditor.fiftyone_setup`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from auditor.datasets.kinds import DatasetKind, register_kind
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import FileImages, SampleTable
from auditor.errors import UserError

KIND = "fiftyone"
NOTES = "fiftyone"  # the table's `extra` key (manifest `dataset_notes`) naming the source
DEFAULT_FIELD = "ground_truth"
DEFAULT_PREFIX = "audit_"
INFO = "audit"  # the dataset's `info` key recording the last audit written into it
# the kind's options: registry keys of a `fiftyone` entry, set by the flags or by the API
SOURCE_KEYS: dict[str, type] = {
    "dataset": str,  # the FiftyOne dataset's name
    "label_field": str,  # its classification field holding the given labels
    "view": str,  # a saved view of it selecting the samples
    "view_stages": list,  # a view's stages (`DatasetView._serialize()`), from Python
    "tags": list,  # only the samples carrying one of these tags
    "prefix": str,  # the results' field and saved-view names start with it
}
# `audit run`'s flags for them: flag -> (key, help)
FLAGS = {
    "--fiftyone-dataset": (
        "dataset",
        "the FiftyOne dataset to audit, for dataset kind fiftyone (default: the registry "
        "entry's `dataset`)",
    ),
    "--label-field": (
        "label_field",
        f"its classification field of the given labels (default {DEFAULT_FIELD})",
    ),
    "--fiftyone-view": ("view", "a saved view of it: audit only its samples (default: all)"),
    "--tags": (
        "tags",
        "audit only its samples with one of these tags, comma-separated (default: all)",
    ),
}
DESTS = {flag[2:].replace("-", "_"): key for flag, (key, _) in FLAGS.items()}  # dest -> key
FLAG_DESTS = tuple(DESTS)


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    """`audit run`'s FiftyOne flags (`FLAGS`), in their own --help section."""
    section = parser.add_argument_group("FiftyOne input (dataset kind fiftyone)")
    for flag, (_, help) in FLAGS.items():
        section.add_argument(flag, help=help)


def typed_source(values: dict[str, Any]) -> dict[str, Any]:
    """The source options typed on the command line (`FLAG_DESTS` of the parsed arguments),
    as registry keys; tags split at commas."""
    out = {}
    for dest, key in DESTS.items():
        value = values.get(dest)
        if value is not None:
            out[key] = (
                [t.strip() for t in value.split(",") if t.strip()] if key == "tags" else value
            )
    return out


def with_source(entry: DatasetEntry, source: dict[str, Any]) -> DatasetEntry:
    """`entry` with the source options `source` over its own registry keys; refused for an
    entry of another kind, which would silently ignore them."""
    if not source:
        return entry
    if entry.kind != KIND:
        flags = ", ".join(f for f, (k, _) in FLAGS.items() if k in source) or ", ".join(source)
        raise UserError(f"{flags}: read by datasets of kind {KIND} only, not {entry.name!r}")
    return replace(entry, options=entry.options | source)


def fiftyone_entry(registry: dict[str, DatasetEntry]) -> DatasetEntry:
    """The registry's `fiftyone` entry, or the kind's plain one when the registry has none."""
    if KIND in registry and registry[KIND].kind == KIND:
        return registry[KIND]
    return DatasetEntry(KIND, KIND, None, None, None, {"backbone": "resnet-small"})


def resumed_entry(entry: DatasetEntry, manifest: dict) -> DatasetEntry:
    """The entry a resumed run reads: a `fiftyone` one with the source its manifest recorded."""
    if entry.kind != KIND:
        return entry
    recorded = (manifest.get("dataset_notes") or {}).get(NOTES) or {}
    return replace(entry, options=entry.options | recorded)


def status(entry: DatasetEntry, root: Path | None) -> tuple[bool, str]:
    name = entry.options.get("dataset")
    return bool(name), f"FiftyOne dataset {name}" if name else "give --fiftyone-dataset NAME"


def selected(dataset: Any, options: dict[str, Any]) -> Any:
    """The samples of `dataset` the options select: a saved view, a view's stages, tags."""
    from auditor.fiftyone_setup import fo

    view = dataset.view()
    if options.get("view"):
        if options["view"] not in dataset.list_saved_views():
            known = ", ".join(dataset.list_saved_views()) or "none"
            raise UserError(
                f"FiftyOne dataset {dataset.name} has no saved view {options['view']!r} "
                f"(saved views: {known})"
            )
        view = dataset.load_saved_view(options["view"])
    try:  # stages and tags may come from a registry entry: FiftyOne's own errors, each its own
        if options.get("view_stages"):
            view = fo.DatasetView._build(dataset, options["view_stages"])
        if options.get("tags"):
            view = view.match_tags(options["tags"])
    except Exception as err:  # any of them: the selection is not one
        raise UserError(
            f"FiftyOne dataset {dataset.name}: its samples cannot be selected with these view "
            f"stages or tags ({type(err).__name__}: {err})"
        ) from None
    return view


def label_field_problem(dataset: Any, field: str) -> str | None:
    """Why `field` of `dataset` cannot hold the given labels, or None."""
    from auditor.fiftyone_setup import fo

    schema = dataset.get_field_schema()
    if field not in schema:
        classified = list(dataset.get_field_schema(embedded_doc_type=fo.Classification))
        return (
            f"has no field {field!r} (its classification fields: {', '.join(classified) or 'none'})"
        )
    kind = schema[field]
    document = getattr(kind, "document_type", None)
    if not (isinstance(document, type) and issubclass(document, fo.Classification)):
        found = document.__name__ if isinstance(document, type) else type(kind).__name__
        return f"field {field!r} holds {found}, not a classification (fo.Classification)"
    return None


def written_by_audit(dataset: Any) -> tuple[list[str], list[str]]:
    """(the fields, the saved views) an earlier audit wrote into `dataset`, as its
    `info["audit"]` records them (`auditor.fiftyone_results`)."""
    record = dataset.info.get(INFO) or {}
    return list(record.get("fields") or []), list(record.get("views") or [])


def foreign_fields(dataset: Any, prefix: str) -> list[str]:
    """The fields of `dataset` under `prefix` that no audit wrote: a re-run would replace them."""
    fields, _ = written_by_audit(dataset)
    return sorted(f for f in dataset.get_field_schema() if f.startswith(prefix) and f not in fields)


def load(entry: DatasetEntry, root: Path | None) -> SampleTable:
    from auditor.fiftyone_setup import fo

    options = entry.options
    name = options.get("dataset")
    if not name:
        raise UserError(
            f"dataset {entry.name!r} is a FiftyOne dataset: give --fiftyone-dataset NAME to "
            "`audit run` (the results of a run of one are in that dataset, under its audit_ "
            "fields: `audit apply` has no label file of it to write)"
        )
    if not fo.dataset_exists(name):
        raise UserError(f"no FiftyOne dataset {name!r} (fiftyone.list_datasets() lists them)")
    dataset = fo.load_dataset(name)
    field = options.get("label_field") or DEFAULT_FIELD
    prefix = options.get("prefix") or DEFAULT_PREFIX
    where = f"FiftyOne dataset {name}"
    problem = label_field_problem(dataset, field)
    if problem:
        raise UserError(f"{where} {problem}: choose another with --label-field")
    if field.startswith(prefix):
        raise UserError(f"{where}: label field {field!r} begins with {prefix!r}, the results'")
    theirs = foreign_fields(dataset, prefix)
    if theirs:
        raise UserError(
            f"{where}: its fields {', '.join(theirs)} begin with {prefix!r}, the prefix of the "
            "audit's results, and were not written by it: rename them (a re-run replaces what "
            "is under the prefix)"
        )
    view = selected(dataset, options)
    ids, paths, labels = view.values(["id", "filepath", f"{field}.label"])
    if len(ids) < 2:
        raise UserError(f"{where}: {len(ids)} samples selected; need at least 2")
    unlabelled = [p for p, label in zip(paths, labels, strict=True) if not label]
    if unlabelled:
        raise UserError(
            f"{where}: {len(unlabelled)} samples have no {field} label (e.g. {unlabelled[0]}); "
            "label them, or leave them out with --tags or --fiftyone-view"
        )
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UserError(f"{where}: {len(missing)} image files are missing (e.g. {missing[0]})")
    classes = list(dataset.classes.get(field) or dataset.default_classes or sorted(set(labels)))
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise UserError(f"{where}: labels {', '.join(unknown)} are not among its {field} classes")
    index = {c: i for i, c in enumerate(classes)}
    source = {"dataset": name, "label_field": field, "prefix": prefix}
    source |= {k: options[k] for k in ("view", "view_stages", "tags") if options.get(k)}
    return SampleTable(
        name=entry.name,
        class_names=classes,
        sample_ids=np.array(ids, dtype=str),
        filepaths=np.array(paths, dtype=str),
        labels=np.array([index[label] for label in labels], dtype=np.int64),
        split=np.full(len(ids), "train"),
        images=FileImages([Path(p) for p in paths]),
        extra={NOTES: source},
    )


register_kind(DatasetKind(name=KIND, load=load, status=status, options=SOURCE_KEYS))
