"""`audit review`: a run folder as a persistent FiftyOne dataset for annotators, and their
decisions read back.

The dataset is named `audit-<dataset>-<run id>`. Each sample carries its image, the
classifications `given`, `prediction`, `suggested` and (when the truth is known) `truth`, the
run's `suspicion`, every `score_<detector>` and `flag_<detector>`, `detector_votes` (how many
detectors put it in their top k, k = the number the ensemble flags) and an empty `corrected`
classification, and from the dataset's review ledger (`auditor.ledger`) `reviewed`,
`review_decision`, `review_label`, `review_reviewer`, `review_note`, `review_disagreement` and
`second_look`. Saved views (`save_views`), each with the description the App shows: `suspects`
(flagged by the ensemble and not already reviewed, most suspect first), `second-look` (reviewed
and contradicted by this run: kept but flagged again, or relabelled and flagged again with
another class suggested), `reviewed` (decided in an earlier round, the decision holding in this
run), `decided` (samples an annotator marked here), `detectors-split` (between a quarter and
three quarters of the voting detectors put it in their top k) and `top-<detector>` for each
member of the ensemble (its k most suspect). `detector_votes` counts only the detectors that
vote: a detector declared `votes=False` (measured to rank clean samples first,
`auditor.detectors.registry`) keeps its `score_` field but has no vote. Rank-identical
detectors were already kept once when the run was scored (`auditor.detectors.distinct`).

Annotators mark samples with tags `relabel`, `keep` or `drop` (on the sample or on a label),
`label:<class>` tags or the `corrected` label; `auditor.annotations` reads every mark as exactly
one decision or refuses it. Re-running `audit review` updates the scores in place (keyed by
`audit_id`), adds no duplicates and keeps every sample tag, label tag and correction.

`prediction` is the model's output in FiftyOne's convention (the argmax of the run's
probabilities `probs`, with their `logits`, which FiftyOne Brain reads); `suggested` is the
tool's proposed correction, where a `relabel` with no other class goes (samples.parquet
`suggested_label`). Both name the same class today, so tiles draw `suggested` only
(`auditor.review_app`: the saved color scheme, ticked fields, sidebar, field descriptions).
The rest of the FiftyOne-native fields (embeddings and the `umap` / `similarity` brain runs,
`cam` / `cam_mirror` heatmaps, `duplicate_of` and the `near-duplicates` view) are described in
`auditor.brain`. `dataset.compute_metadata()` runs on every import, and the App opens on the
`suspects` view.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import auditor.detectors  # noqa: F401  (registers the built-in detectors)
from auditor import brain, ledger, review_app
from auditor.decisions import DECISIONS
from auditor.detectors.votes import detector_votes, top_view_detectors
from auditor.errors import UserError
from auditor.fiftyone_setup import F, fo
from auditor.fsutil import atomic_path
from auditor.review_marks import carry_label_tags, label_tags, marked


def dataset_name(manifest: dict) -> str:
    return f"audit-{manifest['dataset']}-{manifest['run_id']}"


def image_paths(run_dir: Path, manifest: dict, samples: pd.DataFrame) -> list[str]:
    """A file per sample for the App: the image itself when it is a file, else a PNG rendered
    once into `<run>/images/` from the dataset's arrays (Fashion-MNIST, synthetic faces)."""
    paths = samples["filepath"].tolist()
    if all(Path(p).is_file() for p in paths):
        return paths
    from auditor.datasets import load_for_run
    from auditor.datasets.table import ArrayImages

    _, table = load_for_run(manifest)
    if not isinstance(table.images, ArrayImages):
        missing = next(p for p in paths if not Path(p).is_file())
        raise UserError(f"image {missing} of run {manifest['run_id']} no longer exists")
    row_of = {sid: i for i, sid in enumerate(table.sample_ids.tolist())}
    folder = Path(run_dir).resolve() / "images"
    out = []
    for n, sid in enumerate(samples["sample_id"]):
        target = folder / f"{n:06d}.png"
        if not target.is_file():
            write_png(target, table.images.pixels[row_of[sid]])
        out.append(str(target))
    return out


def write_png(target: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(target) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def fiftyone_samples(
    samples: pd.DataFrame,
    class_names: list[str],
    paths: list[str],
    run_id: str,
    state: pd.DataFrame,
) -> Iterator[fo.Sample]:
    """One FiftyOne sample per row of `samples` (the run's fields, and the review `state` of
    `ledger.review_state`), made one at a time: the import adds them in batches."""
    names = np.array(class_names, dtype=object)
    votes, _ = detector_votes(samples)
    has_truth = samples["true_label"].notna().any()
    score_columns = [c for c in samples.columns if c.startswith(("score_", "flag_"))]
    reviews = state.itertuples(index=False)
    for i, (row, review) in enumerate(zip(samples.itertuples(index=False), reviews, strict=True)):
        probs = np.asarray(row.probs, dtype=np.float64)
        fields = {
            "audit_id": row.sample_id,
            "run_id": run_id,
            "given": fo.Classification(label=names[row.given_label]),
            "prediction": fo.Classification(
                label=names[row.pred_label],
                confidence=float(probs[row.pred_label]),
                logits=brain.logits(probs),
            ),
            "suggested": fo.Classification(
                label=names[row.suggested_label],
                confidence=float(row.suggested_confidence),
                logits=brain.logits(probs),
            ),
            "suspicion": float(row.suspicion),
            "detector_votes": int(votes[i]),
        } | review_fields(review)
        if has_truth:
            fields["truth"] = fo.Classification(label=names[int(row.true_label)])
            fields["is_noisy"] = bool(row.is_noisy)
        for column in score_columns:
            value = getattr(row, column)
            fields[column] = (
                None
                if pd.isna(value)
                else (bool(value) if column.startswith("flag_") else float(value))
            )
        yield fo.Sample(filepath=paths[i], **fields)


IMPORT_BATCH = 10_000  # samples made and added at a time: memory bounded for any run size


def review_fields(review: Any) -> dict[str, object]:
    """A sample's fields from its row of `ledger.review_state` (empty text as None)."""
    return {
        "reviewed": bool(review.reviewed),
        "review_decision": review.review_decision or None,
        "review_label": review.review_label or None,
        "review_disagreement": bool(review.disagreement),
        "review_reviewer": review.review_reviewer or None,
        "review_note": review.review_note or None,
        "second_look": bool(review.second_look),
    }


def update_review_fields(dataset: fo.Dataset, samples: pd.DataFrame, state: pd.DataFrame) -> None:
    """Set only the review fields (`review_fields`) of a dataset that already holds every sample
    of this run: a run folder never changes once complete, so only the ledger can have."""
    rows = [review_fields(r) for r in state.itertuples(index=False)]
    ids = samples["sample_id"].astype(str).tolist()
    schema = dataset.get_field_schema()
    for field in rows[0] if rows else []:
        values = [r[field] for r in rows]
        if field not in schema:  # a field no sample had a value for at import
            kind = fo.BooleanField if isinstance(values[0], bool) else fo.StringField
            dataset.add_sample_field(field, kind)
        dataset.set_values(field, dict(zip(ids, values, strict=True)), key_field="audit_id")


def in_batches(items: Iterator[fo.Sample]) -> Iterator[list[fo.Sample]]:
    while batch := list(itertools.islice(items, IMPORT_BATCH)):
        yield batch


def import_samples(
    dataset: fo.Dataset, new: Iterator[fo.Sample], tags: dict[str, dict[str, list[str]]] | None
) -> None:
    """Add `new` to `dataset` in batches (`IMPORT_BATCH`); with `tags` (a re-import: the
    existing samples' label tags), merge them by `audit_id` instead, keeping those tags. The
    unique `audit_id` index comes first, so an import stopped halfway is merged next time."""
    dataset.create_index("audit_id", unique=True)
    for batch in in_batches(new):
        if tags is None:
            dataset.add_samples(batch, progress=False)
            continue
        carry_label_tags(tags, batch)
        dataset.merge_samples(
            batch, key_field="audit_id", merge_lists=True, overwrite=True, progress=False
        )


def load_into_fiftyone(run_dir: Path, top: int | None = None) -> fo.Dataset:
    """Create or update the run's persistent dataset and its saved views."""
    from auditor.outputs.run_readers import read_run, read_samples

    run_dir = Path(run_dir)
    manifest, metrics = read_run(run_dir)
    samples = read_samples(run_dir)
    evidence = run_evidence(run_dir, samples)  # every file read and checked before FiftyOne
    class_names = manifest["class_names"]
    paths = image_paths(run_dir, manifest, samples)
    name = dataset_name(manifest)
    state = ledger.review_state(samples, ledger.read_ledger(ledger.ledger_path(run_dir)))
    new = fiftyone_samples(samples, class_names, paths, manifest["run_id"], state)
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        if dataset.info.get("run_id") == manifest["run_id"] and len(dataset) == len(samples):
            update_review_fields(dataset, samples, state)  # re-opened: only the ledger moved
        else:  # an import that stopped halfway
            import_samples(dataset, new, label_tags(dataset))
    else:
        dataset = fo.Dataset(name, persistent=True)
        dataset.add_sample_field("audit_id", fo.StringField)
        dataset.add_sample_field(
            "corrected", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification
        )
        import_samples(dataset, new, None)
    dataset.info = dataset.info | {  # keeps what `auditor.brain` records there
        "run_dir": str(run_dir.resolve()),
        "run_id": manifest["run_id"],
        "class_names": class_names,
        "decisions": list(DECISIONS),
    }
    dataset.default_classes = list(class_names)
    dataset.save()
    save_views(dataset, samples, top_view_detectors(samples, metrics), top)
    add_run_evidence(dataset, samples, evidence, manifest.get("seed") or 0)
    review_app.dress(dataset, class_names)
    return dataset


@dataclass(frozen=True)
class RunEvidence:
    """What the run folder holds for FiftyOne's own tools, each None when its file does not
    exist (`audit score` and older runs have none)."""

    embeddings: np.ndarray | None  # [N, D], rows of samples.parquet
    cams: dict[str, np.ndarray] | None  # `read_cams`
    pairs: pd.DataFrame | None  # near_duplicates.csv


def run_evidence(run_dir: Path, samples: pd.DataFrame) -> RunEvidence:
    """embeddings.npy, cams.npz and near_duplicates.csv of the run, read and checked against its
    `samples`."""
    from auditor.outputs.run_readers import read_cams, read_embeddings, read_near_duplicates

    ids = samples["sample_id"]
    return RunEvidence(
        read_embeddings(run_dir, len(samples)),
        read_cams(run_dir, ids),
        read_near_duplicates(run_dir, ids),
    )


def add_run_evidence(
    dataset: fo.Dataset, samples: pd.DataFrame, evidence: RunEvidence, seed: int
) -> None:
    """Image metadata, and the run's `evidence` for FiftyOne's own tools (`auditor.brain`): the
    embedding brain runs, the suspects' CAM heatmaps and the near-duplicate pairs, each when the
    run has it."""
    dataset.compute_metadata(progress=False)
    if evidence.embeddings is not None:
        brain.register_embeddings(
            dataset,
            samples["sample_id"].to_numpy(),
            evidence.embeddings,
            samples["flag_suspicion"].to_numpy(),
            seed,
        )
    if evidence.cams is not None:
        brain.set_cams(dataset, evidence.cams)
    if evidence.pairs is not None:
        brain.set_duplicates(dataset, evidence.pairs)


def save_views(
    dataset: fo.Dataset, samples: pd.DataFrame, members: list[str], top: int | None
) -> None:
    """The saved views of the module docstring, `top-<detector>` for each of the ensemble's
    `members`; a view this function saved before and saves no longer is deleted (the names
    are kept in `dataset.info["audit_views"]`), any other view is the user's and stays."""
    k = top or max(int(samples["flag_suspicion"].sum()), 1)
    _, n_detectors = detector_votes(samples)
    by_suspicion = {"field_or_expr": "suspicion", "reverse": True}
    between = (F("detector_votes") * 4 >= n_detectors) & (
        F("detector_votes") * 4 <= 3 * n_detectors
    )
    views = {
        "suspects": (
            dataset.match(F("flag_suspicion") & ~F("reviewed")).sort_by(**by_suspicion),
            "Flagged by the ensemble and not decided in an earlier round: review these first, "
            "most suspect first",
        ),
        "second-look": (
            dataset.match(F("second_look")).sort_by(**by_suspicion),
            "Earlier decisions this run contradicts (kept but flagged again; relabelled, flagged "
            "again, another class suggested): see review_decision, review_reviewer, review_note",
        ),
        "reviewed": (
            dataset.match(F("reviewed")).sort_by(**by_suspicion),
            "Decided in an earlier round (review ledger) and the decision holds in this run",
        ),
        "decided": (marked(dataset), "Samples an annotator marked in this dataset"),
        "detectors-split": (
            dataset.match(between).sort_by(**by_suspicion),
            f"Samples a quarter to three quarters of the {n_detectors} voting detectors put in "
            "their top k: the detectors disagree",
        ),
    }
    for detector in members:
        views[f"top-{detector}"] = (
            dataset.sort_by(f"score_{detector}", reverse=True).limit(k),
            f"The {k} samples {detector} (a member of the ensemble) finds most suspect",
        )
    for gone in set(dataset.info.get("audit_views", [])) - set(views):
        if dataset.has_saved_view(gone):
            dataset.delete_saved_view(gone)
    for view_name, (view, description) in views.items():
        dataset.save_view(view_name, view, description=description, overwrite=True)
    dataset.info["audit_views"] = list(views)
    dataset.save()


def open_dataset(manifest: dict) -> fo.Dataset:
    name = dataset_name(manifest)
    if not fo.dataset_exists(name):
        raise UserError(f"no FiftyOne dataset {name}: run `audit review` on the run first")
    return fo.load_dataset(name)
