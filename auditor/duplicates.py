"""Near-duplicate images with different given labels: two copies of one image cannot both be
labelled right when their labels differ, a classic label error.

Two kinds of pair (a, b), a before b in samples.parquet, each listed once, given_a != given_b:

- `exact`: the decoded pixels are identical (the same uint8 array after decoding and resizing to
  the training size, compared by a BLAKE2b digest of its bytes). A group of g identical images
  yields each of its g (g - 1) / 2 pairs whose labels differ.
- `near`: b is among the K_NEIGHBOURS nearest neighbours of a (or a of b) in the embeddings of
  the best trusted model (those `embeddings.npy` holds), not an exact pair, and their cosine
  distance

      d(a, b) = 1 - <e_a, e_b> / (|e_a| |e_b|)        (0 = same direction; lower = more alike)

  is below NEAR_FRACTION x the median over all samples of the distance to their nearest other
  sample. The threshold is relative because the scale of a model's embedding distances depends
  on its training; NEAR_FRACTION was measured on the demo (docs/run-folder.md,
  `near_duplicates.csv`).

Neighbours come from `auditor.detectors.neighbours` (exact up to EXACT_UP_TO samples, an
inverted file above), so no N x N matrix is formed.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from auditor.datasets.pixel_map import Pixels, chunks
from auditor.detectors.neighbours import approximate_neighbours, exact_neighbours

K_NEIGHBOURS = 5  # neighbours of each sample examined for a near duplicate
NEAR_FRACTION = 0.1  # near: d < NEAR_FRACTION x median nearest-neighbour distance
EXACT_UP_TO = 20_000  # exact neighbours up to this many samples, an inverted file above

COLUMNS = ["sample_id_a", "sample_id_b", "given_a", "given_b", "distance", "kind"]


def exact_pairs(pixels: Pixels | np.ndarray, labels: np.ndarray) -> set[tuple[int, int]]:
    """(a, b), a < b: rows of `pixels` (uint8 [N, ...]) with identical bytes and different
    labels. Read block by block: the images need not be in memory."""
    groups: dict[bytes, list[int]] = {}
    for row, image in enumerate(image for block in chunks(pixels) for image in block):
        digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()
        groups.setdefault(digest, []).append(row)
    return {
        (a, b)
        for rows in groups.values()
        for i, a in enumerate(rows)
        for b in rows[i + 1 :]
        if labels[a] != labels[b]
    }


def nearest(unit: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosine distance [N, k], index [N, k]) of each unit row's k nearest other rows."""
    if len(unit) <= EXACT_UP_TO:
        sims, idx = exact_neighbours(unit, k)
    else:
        sims, idx = approximate_neighbours(unit, k)
    return (1.0 - sims).clamp_min(0.0).numpy(), idx.numpy()


def near_pairs(unit: torch.Tensor, labels: np.ndarray) -> set[tuple[int, int]]:
    """(a, b), a < b: neighbours closer than the `near` threshold with different labels."""
    if len(unit) < 2:
        return set()
    dist, idx = nearest(unit, min(K_NEIGHBOURS, len(unit) - 1))
    threshold = NEAR_FRACTION * float(np.median(dist[:, 0]))
    a, j = np.nonzero(dist < threshold)
    b = idx[a, j]
    keep = labels[a] != labels[b]
    return {(min(x, y), max(x, y)) for x, y in zip(a[keep].tolist(), b[keep].tolist(), strict=True)}


def near_duplicates(
    sample_ids: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    embeddings: np.ndarray,
    pixels: Pixels | np.ndarray,
) -> pd.DataFrame:
    """The pairs of the module docstring, one row each with COLUMNS: the two sample ids, their
    given class names, the cosine distance d of their embeddings and the kind (`exact` |
    `near`); exact pairs first, then by distance."""
    labels = np.asarray(labels)
    unit = F.normalize(torch.as_tensor(np.asarray(embeddings, dtype=np.float32)), dim=1)
    exact = exact_pairs(pixels, labels)
    near = near_pairs(unit, labels) - exact
    pairs = [
        (a, b, kind) for kind, found in (("exact", exact), ("near", near)) for a, b in sorted(found)
    ]
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    distance = (1.0 - (unit[a] * unit[b]).sum(dim=1)).clamp_min(0.0).double().numpy()
    names = np.asarray(class_names, dtype=object)
    frame = pd.DataFrame(
        {
            "sample_id_a": np.asarray(sample_ids, dtype=object)[a].astype(str),
            "sample_id_b": np.asarray(sample_ids, dtype=object)[b].astype(str),
            "given_a": names[labels[a]],
            "given_b": names[labels[b]],
            "distance": distance,
            "kind": [p[2] for p in pairs],
        },
        columns=COLUMNS,
    )
    return frame.sort_values(["kind", "distance"], kind="stable", ignore_index=True)
