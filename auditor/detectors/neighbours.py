"""kNN label consistency on the model's embeddings (SimiFeat, Zhu et al. 2022; Docta).

score_i = 1 - (sum of the cosine similarities of i's k nearest neighbours that share i's given
label) / (sum of the similarities of all k), similarities clipped at 0. Higher = the
neighbourhood disagrees with the label (suspect).

Never an N x N matrix. Up to `exact_up_to` samples the neighbours are exact (chunked
similarity products). Above it they are approximate: the embeddings are projected on their
top `dims` principal components, then searched with an inverted file: spherical k-means puts
the samples into about sqrt(N) lists, and the queries of each list are compared only with the
samples of the `n_probe` lists whose centroids are nearest its own (with N = 300,000 and
n_probe = 8, about 1.5% of the pairs).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from auditor.detectors.registry import detector


def exact_neighbours(
    x: torch.Tensor, k: int, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """(similarity [N, k], index [N, k]) of the k most cosine-similar other rows of unit `x`."""
    sims, idx = [], []
    for start in range(0, len(x), chunk):
        s = x[start : start + chunk] @ x.T
        s[torch.arange(len(s)), torch.arange(start, start + len(s))] = -math.inf  # not itself
        top = s.topk(k, dim=1)
        sims.append(top.values)
        idx.append(top.indices)
    return torch.cat(sims), torch.cat(idx)


def spherical_kmeans(
    x: torch.Tensor, n_lists: int, *, iters: int, generator: torch.Generator
) -> torch.Tensor:
    """Unit centroids [n_lists, D] of unit rows `x` (cosine k-means, random initial rows)."""
    centroids = x[torch.randperm(len(x), generator=generator)[:n_lists]].clone()
    for _ in range(iters):
        assign = assign_lists(x, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = sums.norm(dim=1) == 0
        sums[empty] = centroids[empty]
        centroids = F.normalize(sums, dim=1)
    return centroids


def assign_lists(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    return torch.cat(
        [(x[s : s + chunk] @ centroids.T).argmax(dim=1) for s in range(0, len(x), chunk)]
    )


def approximate_neighbours(
    x: torch.Tensor, k: int, *, n_probe: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverted-file approximation of `exact_neighbours` (see the module docstring)."""
    n_lists = max(1, int(math.sqrt(len(x))))
    g = torch.Generator().manual_seed(seed)
    sample = x[torch.randperm(len(x), generator=g)[: min(len(x), 64 * n_lists)]]
    centroids = spherical_kmeans(sample, n_lists, iters=10, generator=g)
    assign = assign_lists(x, centroids)
    probes = (centroids @ centroids.T).topk(min(n_probe, n_lists), dim=1).indices
    order = torch.argsort(assign, stable=True)
    bounds = torch.searchsorted(assign[order], torch.arange(n_lists + 1)).tolist()
    members = [order[bounds[c] : bounds[c + 1]] for c in range(n_lists)]
    sims = torch.full((len(x), k), -math.inf)
    idx = torch.zeros((len(x), k), dtype=torch.long)
    for c in range(n_lists):
        queries = members[c]
        if not len(queries):
            continue
        candidates = torch.cat([members[p] for p in probes[c].tolist()])
        top = (x[queries] @ x[candidates].T).topk(min(k + 1, len(candidates)), dim=1)
        found = candidates[top.indices]
        values = top.values.masked_fill(found == queries.unsqueeze(1), -math.inf)  # not itself
        best = values.topk(min(k, values.shape[1]), dim=1)
        sims[queries, : best.values.shape[1]] = best.values
        idx[queries, : best.values.shape[1]] = found.gather(1, best.indices)
    return sims, idx


def principal_components(x: torch.Tensor, dims: int, seed: int) -> torch.Tensor:
    """x projected on its top `dims` principal components (randomised SVD), when it is wider."""
    if x.shape[1] <= dims:
        return x
    torch.manual_seed(seed)
    mean = x.mean(dim=0, keepdim=True)
    _, _, v = torch.pca_lowrank(x - mean, q=dims, center=False, niter=2)
    return (x - mean) @ v


@detector("knn", reads=("embeddings", "labels"))
def knn_label_disagreement(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = 10,
    exact_up_to: int = 20_000,
    n_probe: int = 8,
    dims: int = 64,
    seed: int = 0,
) -> np.ndarray:
    n = len(embeddings)
    if n < 2:
        return np.zeros(n)
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    k = min(k, n - 1)
    if n <= exact_up_to:
        sims, idx = exact_neighbours(F.normalize(x, dim=1), k)
    else:
        x = F.normalize(principal_components(x, dims, seed), dim=1)
        sims, idx = approximate_neighbours(x, k, n_probe=n_probe, seed=seed)
    y = torch.as_tensor(np.asarray(labels))
    weights = sims.clamp_min(0)  # -inf (too few candidates) and negative similarities count 0
    agree = (weights * (y[idx] == y.unsqueeze(1))).sum(dim=1)
    total = weights.sum(dim=1)
    share = torch.where(total > 0, agree / total.clamp_min(1e-12), torch.full_like(total, 0.5))
    return (1.0 - share).double().numpy()
