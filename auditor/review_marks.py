"""What annotators marked in a review dataset (`auditor.review`): the samples they marked, their
marks as `auditor.annotations.Marks` (read into decisions by `auditor.annotations`), and the
label tags a re-import must carry over."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.annotations import Marks
from auditor.fiftyone_setup import F, fo


def label_tags(dataset: fo.Dataset) -> dict[str, dict[str, list[str]]]:
    """{audit_id: {label field: tags}} of the tags annotators set on the labels of the existing
    samples (the App's label tags); samples and labels without tags are left out."""
    fields = [f for f in dataset.get_field_schema(embedded_doc_type=fo.Label) if f != "corrected"]
    paths = ["audit_id", *[f"{f}.tags" for f in fields]]
    columns = dict(zip(paths, dataset.values(paths), strict=True))
    return {
        sid: {f: columns[f"{f}.tags"][i] for f in fields if columns[f"{f}.tags"][i]}
        for i, sid in enumerate(columns["audit_id"])
    }


def carry_label_tags(tags: dict[str, dict[str, list[str]]], new: Iterable[fo.Sample]) -> None:
    """Put the existing samples' label tags (`label_tags`) onto the same label of the
    re-imported samples, which would otherwise replace them."""
    for sample in new:
        for field, field_tags in tags.get(sample["audit_id"], {}).items():
            if sample.has_field(field) and sample[field] is not None:
                sample[field].tags = list(field_tags)


def marked(dataset: fo.Dataset) -> fo.DatasetView:
    """Samples an annotator marked: a sample tag, a tag on any label, or `corrected` set."""
    fields = dataset.get_field_schema(embedded_doc_type=fo.Label)
    expression = (F("tags").length() > 0) | F("corrected").exists()
    for field in fields:
        expression = expression | (F(f"{field}.tags").length() > 0)
    return dataset.match(expression)


def marks_from_fiftyone(dataset: fo.Dataset) -> list[Marks]:
    """What annotators set on each sample that carries any mark: sample tags, the tags of every
    label field (classifications, heatmaps...), each classification's class, `corrected`."""
    label_fields = list(dataset.get_field_schema(embedded_doc_type=fo.Label))
    classified = list(dataset.get_field_schema(embedded_doc_type=fo.Classification))
    paths = ["audit_id", "given.label", "tags", "corrected.label"]
    paths += [f"{name}.tags" for name in label_fields] + [f"{name}.label" for name in classified]
    columns = dict(zip(paths, dataset.values(paths), strict=True))
    out = []
    for i, sid in enumerate(columns["audit_id"]):
        on_labels = {
            n: tuple(columns[f"{n}.tags"][i]) for n in label_fields if columns[f"{n}.tags"][i]
        }
        corrected = columns["corrected.label"][i]
        if not (columns["tags"][i] or on_labels or corrected):
            continue
        out.append(
            Marks(
                sample_id=sid,
                given=columns["given.label"][i],
                sample_tags=tuple(columns["tags"][i] or ()),
                label_tags=on_labels,
                field_labels={
                    n: columns[f"{n}.label"][i] for n in classified if columns[f"{n}.label"][i]
                },
                corrected=corrected,
            )
        )
    return out
