"""`audit review`: a run folder as a persistent FiftyOne dataset for annotators, and their
decisions read back.

The dataset is named `audit-<dataset>-<run id>`. Each sample carries its image, the
classifications `given`, `prediction`, `suggested` and (when the truth is known) `truth`, the
run's `suspicion`, every `score_<detector>` and `flag_<detector>`, `detector_votes` (how many
detectors put it in their top k, k = the number the ensemble flags) and an empty `corrected`
classification. Saved views: `suspects` (flagged by the ensemble, most suspect first),
`top-<detector>` (each detector's k most suspect), `disagree` (between a quarter and three
quarters of the detectors put it in their top k) and `decided` (samples already tagged).
`detector_votes` and the `top-` views count only the detectors that vote: a detector declared
`votes=False` (measured to rank clean samples first, `auditor.detectors.registry`) keeps its
`score_` field but has no vote and no view. Rank-identical detectors were already kept once
when the run was scored (`auditor.detectors.distinct`).

Annotators tag samples `relabel`, `keep` or `drop`; the class a `relabel` goes to is the
`corrected` label when set, else a `label:<class>` tag, else the suggestion. Re-running
`audit review` updates the scores in place (keyed by `audit_id`), adds no duplicates and keeps
every tag and correction.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from auditor.errors import UserError
from auditor.fsutil import atomic_path

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")  # MongoDB 6.0 is supported
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import fiftyone as fo  # noqa: E402
from fiftyone import ViewField as F  # noqa: E402

import auditor.detectors  # noqa: E402, F401  (registers the built-in detectors)
from auditor.decisions import DECISIONS  # noqa: E402
from auditor.detectors.registry import voting  # noqa: E402

LABEL_TAG = "label:"


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


def voting_columns(samples: pd.DataFrame) -> list[str]:
    """The `score_<name>` columns of the detectors that vote (`voting`): all but those of
    detectors declared `votes=False`."""
    return [c for c in samples.columns if c.startswith("score_") and voting(c[len("score_") :])]


def detector_votes(samples: pd.DataFrame) -> tuple[np.ndarray, int]:
    """(for each sample, how many voting detectors rank it in their top k; the number of voting
    detectors), k = the number of samples the ensemble flags (at least 1)."""
    score_columns = voting_columns(samples)
    k = max(int(samples["flag_suspicion"].sum()), 1)
    votes = np.zeros(len(samples), dtype=np.int64)
    for column in score_columns:
        order = np.argsort(-samples[column].fillna(-np.inf).to_numpy(), kind="stable")
        votes[order[:k]] += 1
    return votes, len(score_columns)


def fiftyone_samples(
    samples: pd.DataFrame, class_names: list[str], paths: list[str], run_id: str
) -> list[fo.Sample]:
    names = np.array(class_names, dtype=object)
    votes, _ = detector_votes(samples)
    has_truth = samples["true_label"].notna().any()
    score_columns = [c for c in samples.columns if c.startswith(("score_", "flag_"))]
    out = []
    for i, row in enumerate(samples.itertuples(index=False)):
        probs = np.asarray(row.probs, dtype=np.float64)
        fields = {
            "audit_id": row.sample_id,
            "run_id": run_id,
            "given": fo.Classification(label=names[row.given_label]),
            "prediction": fo.Classification(
                label=names[row.pred_label], confidence=float(probs[row.pred_label])
            ),
            "suggested": fo.Classification(
                label=names[row.suggested_label], confidence=float(row.suggested_confidence)
            ),
            "suspicion": float(row.suspicion),
            "detector_votes": int(votes[i]),
        }
        if has_truth:
            fields["truth"] = fo.Classification(label=names[int(row.true_label)])
            fields["is_noisy"] = bool(row.is_noisy)
        for column in score_columns:
            value = getattr(row, column)
            fields[column] = None if pd.isna(value) else (bool(value) if column.startswith("flag_") else float(value))  # fmt: skip
        out.append(fo.Sample(filepath=paths[i], **fields))
    return out


def load_into_fiftyone(run_dir: Path, top: int | None = None) -> fo.Dataset:
    """Create or update the run's persistent dataset and its saved views."""
    from auditor.outputs.run_folder import read_run, read_samples

    run_dir = Path(run_dir)
    manifest, _ = read_run(run_dir)
    samples = read_samples(run_dir)
    class_names = manifest["class_names"]
    paths = image_paths(run_dir, manifest, samples)
    name = dataset_name(manifest)
    new = fiftyone_samples(samples, class_names, paths, manifest["run_id"])
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        dataset.merge_samples(
            new, key_field="audit_id", merge_lists=True, overwrite=True, progress=False
        )
    else:
        dataset = fo.Dataset(name, persistent=True)
        dataset.add_sample_field("corrected", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)  # fmt: skip
        dataset.add_samples(new, progress=False)
        dataset.create_index("audit_id", unique=True)
    dataset.info = {"run_dir": str(run_dir.resolve()), "run_id": manifest["run_id"],
                    "class_names": class_names, "decisions": list(DECISIONS)}  # fmt: skip
    dataset.default_classes = list(class_names)
    dataset.save()
    save_views(dataset, samples, top)
    return dataset


def save_views(dataset: fo.Dataset, samples: pd.DataFrame, top: int | None) -> None:
    k = top or max(int(samples["flag_suspicion"].sum()), 1)
    _, n_detectors = detector_votes(samples)
    views = {
        "suspects": dataset.match(F("flag_suspicion")).sort_by("suspicion", reverse=True),
        "disagree": dataset.match(
            (F("detector_votes") * 4 >= n_detectors) & (F("detector_votes") * 4 <= 3 * n_detectors)
        ).sort_by("suspicion", reverse=True),
        "decided": dataset.match_tags(list(DECISIONS)),
    }
    for column in voting_columns(samples):
        views[f"top-{column[len('score_') :]}"] = dataset.sort_by(column, reverse=True).limit(k)
    for view_name, view in views.items():
        dataset.save_view(view_name, view, overwrite=True)


def decisions_from_fiftyone(
    dataset: fo.Dataset, class_names: list[str]
) -> dict[str, tuple[str, int | None]]:
    """sample_id -> (decision, corrected label or None for "the suggestion") from the tags and
    the `corrected` field. A sample with two decision tags, or a correction naming an unknown
    class, is refused."""
    lookup = {name: i for i, name in enumerate(class_names)}
    decided: dict[str, tuple[str, int | None]] = {}
    problems = []
    view = dataset.match_tags(list(DECISIONS))
    ids, tags, corrected = view.values(["audit_id", "tags", "corrected.label"])
    for sid, sample_tags, correction in zip(ids, tags, corrected, strict=True):
        chosen = [t for t in DECISIONS if t in sample_tags]
        if len(chosen) > 1:
            problems.append(f"{sid}: tagged {' and '.join(chosen)}")
            continue
        label_tags = [t[len(LABEL_TAG) :] for t in sample_tags if t.startswith(LABEL_TAG)]
        wanted = correction or (label_tags[0] if label_tags else None)
        if wanted is not None and wanted not in lookup:
            problems.append(f"{sid}: corrected label {wanted!r} is not a class")
            continue
        decided[sid] = (chosen[0], None if wanted is None else lookup[wanted])
    if problems:
        raise UserError(
            f"FiftyOne dataset {dataset.name}: {len(problems)} samples have conflicting "
            f"decisions: {'; '.join(problems[:8])}; classes are {class_names}"
        )
    return decided


def open_dataset(manifest: dict) -> fo.Dataset:
    name = dataset_name(manifest)
    if not fo.dataset_exists(name):
        raise UserError(f"no FiftyOne dataset {name}: run `audit review` on the run first")
    return fo.load_dataset(name)


def launch(dataset: fo.Dataset, address: str, port: int) -> None:
    """Serve the App for `dataset` on address:port until interrupted."""
    session = fo.launch_app(dataset, address=address, port=port, remote=True, auto=False)
    print(
        f"FiftyOne App: http://{address}:{port}/datasets/{dataset.name} (Ctrl-C to stop)",
        flush=True,
    )
    session.wait(-1)
