"""kNN label consistency on the model's embeddings (SimiFeat, Zhu et al. 2022; Docta).

score_i = 1 - (sum of cosine similarities of i's k nearest neighbours that share i's given
label) / (sum of the similarities of all k), with similarities clipped at 0. Higher = the
neighbourhood disagrees with the label (suspect).

Neighbours come from scikit-learn's NearestNeighbors on L2-normalised embeddings (Euclidean
order = cosine order), queried in chunks: memory is O(N k), never an N x N matrix. Above
`approximate_above` samples the embeddings are first projected to `approximate_dims`
dimensions by a seeded Gaussian random projection (Johnson-Lindenstrauss), which keeps
neighbourhoods approximately and makes the search far cheaper.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.random_projection import GaussianRandomProjection


def knn_label_disagreement(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = 10,
    chunk: int = 8192,
    approximate_above: int = 50_000,
    approximate_dims: int = 32,
    seed: int = 0,
) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.zeros(n)
    if n > approximate_above and x.shape[1] > approximate_dims:
        x = (
            GaussianRandomProjection(approximate_dims, random_state=seed)
            .fit_transform(x)
            .astype(np.float32)
        )
    x /= np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    k = min(k, n - 1)
    index = NearestNeighbors(n_neighbors=k + 1).fit(x)
    score = np.empty(n)
    for start in range(0, n, chunk):
        dist, idx = index.kneighbors(x[start : start + chunk])
        dist, idx = dist[:, 1:], idx[:, 1:]  # drop the sample itself
        similarity = np.clip(1.0 - dist**2 / 2.0, 0.0, None)  # unit vectors: cos = 1 - d^2 / 2
        same = labels[idx] == labels[start : start + chunk, None]
        total = similarity.sum(axis=1)
        agree = (similarity * same).sum(axis=1)
        score[start : start + chunk] = 1.0 - np.divide(
            agree, total, out=np.full_like(total, 0.5), where=total > 0
        )
    return score
