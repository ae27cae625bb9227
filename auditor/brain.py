"""The run's own evidence in FiftyOne's native forms, for `audit review` (`auditor.review`):
logits FiftyOne Brain reads, a Brain visualization and similarity index built from the run's
stored embeddings (never a downloaded model, so the App works offline), the CAMs of the
suspects as heatmaps, and the near-duplicate pairs as a saved view.

- Logits: `prediction` and `suggested` carry `logits` = log(max(p, PROB_FLOOR)) of the run's
  class probabilities p (samples.parquet `probs`), so softmax(logits) = p (to within the floor)
  and `fob.compute_mistakenness(dataset, "prediction", label_field="given", use_logits=True)`
  works: mistakenness = (m exp(-H(softmax(logits))) + 1) / 2, m = +1 when the prediction
  differs from the given label, -1 when it agrees, H the entropy; higher = more likely a
  wrong label.
- `embedding` (a vector per sample, from `embeddings.npy`: the best trusted method's pooled
  features, as the report's UMAP) feeds the Brain runs `umap` (a 2-D UMAP of at most
  VIS_POINTS samples: every flagged one, then a seeded random draw of the others; the App's
  embeddings panel) and `similarity` (an sklearn index
  on cosine distance; the App's "sort by similarity" and
  `dataset.sort_by_similarity(id, brain_key="similarity")`).
- `cam`, `cam_mirror` (fo.Heatmap) on the samples of `cams.npz` (the most suspect flagged ones):
  the class activation map of the suggested class on the image and on its mirror image
  (mirrored back), at the feature map's resolution, both with the range [min, max] over the two
  maps so they read on one scale; higher = the region raised that class's logit more. The App
  draws them with the saved colormap (`auditor.review_app`: blue low, red high) once `cam` or
  `cam_mirror` is ticked in its sidebar.
- `duplicate_of` (the sample ids it pairs with in `near_duplicates.csv`, `auditor.duplicates`)
  and `duplicate_group` (pairs sharing a sample form one group); saved view `near-duplicates`:
  the samples of those pairs, a group's samples next to each other.

Re-running replaces every one of these: brain runs are deleted and computed again, fields set
again from the run folder.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from auditor.fiftyone_setup import fo, fob

PROB_FLOOR = 1e-12  # logits = log(max(p, PROB_FLOOR)): a probability of 0 has a finite logit
VIS_POINTS = 20_000  # the `umap` visualization holds at most this many samples
VIS_KEY = "umap"
SIMILARITY_KEY = "similarity"
EMBEDDINGS_INFO = "audit_embeddings"  # dataset.info key: `embeddings_key` of the brain runs
DUPLICATES_VIEW = "near-duplicates"


def logits(probs: np.ndarray) -> list[float]:
    """log(max(p, PROB_FLOOR)) of one sample's class probabilities `probs` [K]."""
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), PROB_FLOOR)).tolist()


def by_audit_id(sample_ids: np.ndarray, values: list) -> dict[str, object]:
    """{sample id: value}, the form `set_values(..., key_field="audit_id")` reads."""
    return dict(zip([str(s) for s in sample_ids], values, strict=True))


def register_embeddings(
    dataset: fo.Dataset,
    sample_ids: np.ndarray,
    embeddings: np.ndarray,
    flagged: np.ndarray,
    seed: int,
) -> None:
    """Store `embeddings` [N, D] (rows of `sample_ids`) as the field `embedding` and compute the
    `similarity` and `umap` brain runs from it, replacing earlier ones; unless the dataset
    already holds both, computed from these same embeddings and rows (`embeddings_key`, kept in
    `dataset.info`): re-opening a reviewed run then costs no UMAP."""
    key = embeddings_key(sample_ids, embeddings, flagged, seed)
    held = dataset.has_brain_run(VIS_KEY) and dataset.has_brain_run(SIMILARITY_KEY)
    if held and dataset.info.get(EMBEDDINGS_INFO) == key and dataset.has_field("embedding"):
        print(
            "audit: the App's embeddings (UMAP, similarity) are this run's already: reused",
            file=sys.stderr,
        )
        return
    from auditor.numba_cache import cached_umap

    cached_umap()  # UMAP's JIT once per machine, not once per process
    if "embedding" not in dataset.get_field_schema():
        dataset.add_sample_field("embedding", fo.VectorField)
    dataset.set_values("embedding", by_audit_id(sample_ids, list(embeddings)), key_field="audit_id")
    for brain_key in (VIS_KEY, SIMILARITY_KEY):
        if dataset.has_brain_run(brain_key):
            dataset.delete_brain_run(brain_key)
    fob.compute_similarity(
        dataset,
        embeddings="embedding",
        backend="sklearn",
        metric="cosine",
        brain_key=SIMILARITY_KEY,
        progress=False,
    )
    rows = visualized_rows(flagged, seed)
    print(
        f"audit: UMAP of {len(rows)} samples for the App's embeddings panel (the first run "
        "also compiles it: up to a minute)",
        file=sys.stderr,
        flush=True,
    )
    view = dataset.select_by("audit_id", [str(s) for s in np.asarray(sample_ids)[rows]])
    fob.compute_visualization(
        view,
        embeddings="embedding",
        method="umap",
        brain_key=VIS_KEY,
        seed=seed,
        verbose=False,
        progress=False,
    )
    dataset.info[EMBEDDINGS_INFO] = key
    dataset.save()


def embeddings_key(
    sample_ids: np.ndarray, embeddings: np.ndarray, flagged: np.ndarray, seed: int
) -> str:
    """A digest of everything the brain runs are computed from: the sample ids, the embeddings'
    bytes, the flags (which rows are visualized) and the seed."""
    digest = hashlib.sha256()
    for part in (np.asarray(sample_ids).astype(str), embeddings, flagged.astype(bool)):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update(str(seed).encode())
    return digest.hexdigest()


def visualized_rows(flagged: np.ndarray, seed: int) -> np.ndarray:
    """Sorted rows of the visualization: all of them up to VIS_POINTS; above, every flagged row
    (up to VIS_POINTS), then a seeded random draw of the others up to VIS_POINTS in all."""
    rows = np.arange(len(flagged))
    if len(rows) <= VIS_POINTS:
        return rows
    chosen = rows[flagged][:VIS_POINTS]
    others = rows[~flagged]
    draw = np.random.default_rng(seed).choice(len(others), VIS_POINTS - len(chosen), replace=False)
    return np.sort(np.concatenate([chosen, others[draw]]))


def set_cams(dataset: fo.Dataset, cams: dict[str, np.ndarray]) -> None:
    """`cam` and `cam_mirror` heatmaps on the samples of `cams` (`read_cams`: sample_id, cam,
    mirror_cam [n, h, w]); every other sample's are cleared. Tags an annotator put on a
    heatmap (the App's label tags) are kept on the new one."""
    schema = dataset.get_field_schema()
    present = [f for f in ("cam", "cam_mirror") if f in schema]
    kept = {f: dict(zip(*dataset.values(["audit_id", f"{f}.tags"]), strict=True)) for f in present}
    dataset.clear_sample_fields(present)
    low = np.minimum(cams["cam"].min(axis=(1, 2)), cams["mirror_cam"].min(axis=(1, 2)))
    high = np.maximum(cams["cam"].max(axis=(1, 2)), cams["mirror_cam"].max(axis=(1, 2)))
    for field, maps in (("cam", cams["cam"]), ("cam_mirror", cams["mirror_cam"])):
        tags = kept.get(field, {})
        heatmaps = [
            fo.Heatmap(map=m, range=[float(lo), float(hi)], tags=tags.get(sid) or [])
            for sid, m, lo, hi in zip(cams["sample_id"], maps, low, high, strict=True)
        ]
        dataset.set_values(field, by_audit_id(cams["sample_id"], heatmaps), key_field="audit_id")


def set_duplicates(dataset: fo.Dataset, pairs: pd.DataFrame) -> None:
    """`duplicate_of` and `duplicate_group` from `pairs` (near_duplicates.csv) and the saved
    view DUPLICATES_VIEW; the fields of samples in no pair are cleared."""
    schema = dataset.get_field_schema()
    if "duplicate_of" not in schema:
        dataset.add_sample_field("duplicate_of", fo.ListField, subfield=fo.StringField)
        dataset.add_sample_field("duplicate_group", fo.IntField)
    dataset.clear_sample_fields(["duplicate_of", "duplicate_group"])
    ids = sorted(set(pairs["sample_id_a"]) | set(pairs["sample_id_b"]))
    if ids:
        index = {sid: i for i, sid in enumerate(ids)}
        edges = (
            pairs["sample_id_a"].map(index).to_numpy(),
            pairs["sample_id_b"].map(index).to_numpy(),
        )
        _, group = connected_components(
            coo_matrix((np.ones(len(pairs)), edges), shape=(len(ids),) * 2)
        )
        partners: dict[str, list[str]] = {sid: [] for sid in ids}
        for a, b in zip(pairs["sample_id_a"], pairs["sample_id_b"], strict=True):
            partners[a].append(b)
            partners[b].append(a)
        dataset.set_values("duplicate_of", partners, key_field="audit_id")
        dataset.set_values(
            "duplicate_group", by_audit_id(np.asarray(ids), group.tolist()), key_field="audit_id"
        )
    view = dataset.exists("duplicate_of").sort_by([("duplicate_group", 1), ("audit_id", 1)])
    dataset.save_view(
        DUPLICATES_VIEW,
        view,
        description="Near-duplicate images (near_duplicates.csv), grouped: duplicate_of names "
        "the other image, duplicate_group the group",
        overwrite=True,
    )


def app_spaces(dataset: fo.Dataset) -> fo.Space | None:
    """The App's layout: the sample grid beside the embeddings panel, which lists the VIS_KEY
    map; None when the dataset has no such brain run. FiftyOne 1.22's panel opens on its list
    and uncoloured whatever state a session gives it (it resets the open map on mounting and
    keeps its colour field in browser-local state, measured in headless Chromium): one click
    opens the map, "Color by" -> `suspicion` colours it."""
    if not dataset.has_brain_run(VIS_KEY):
        return None
    return fo.Space(
        children=[
            fo.Panel(type="Samples", pinned=True),
            fo.Panel(type="Embeddings"),
        ],
        orientation="horizontal",
    )
