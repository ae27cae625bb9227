"""Label-noise injection for benchmarks with a known answer (docs/methods.md, "Label-noise injection").

Every function is seeded, returns new labels and never modifies its input; the mask and the
real flip rate come from comparing the result with the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_TYPES = ("symmetric", "pair", "asymmetric", "instance")


@dataclass(frozen=True)
class NoisyLabels:
    given: np.ndarray  # the labels a model trains on
    true: np.ndarray  # the labels before injection
    mask: np.ndarray  # given != true

    @property
    def real_rate(self) -> float:
        return float(self.mask.mean()) if len(self.mask) else 0.0


def symmetric_noise(labels: np.ndarray, num_classes: int, rate: float, *, seed: int) -> np.ndarray:
    """Flip-to-other: with probability `rate` replace y by a uniform draw from the other K - 1
    classes (the protocol of the published RAF-DB noise files)."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < rate
    shift = rng.integers(1, num_classes, size=len(labels))
    return np.where(flip, (labels + shift) % num_classes, labels)


def pair_noise(labels: np.ndarray, num_classes: int, rate: float, *, seed: int) -> np.ndarray:
    """Pair flipping: with probability `rate` replace y by (y + 1) mod K."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < rate
    return np.where(flip, (labels + 1) % num_classes, labels)


def asymmetric_noise(
    labels: np.ndarray, num_classes: int, rate: float, *, seed: int, sparsity: float = 0.0
) -> np.ndarray:
    """Class-conditional noise (the Confident Learning benchmarks): a noise matrix
    P(given = i | true = j) with trace K * (1 - rate) and a fraction `sparsity` of its
    off-diagonal rates at zero (`cleanlab.benchmarking.noise_generation`), then labels drawn
    from it per class."""
    from cleanlab.benchmarking.noise_generation import (
        generate_noise_matrix_from_trace,
        generate_noisy_labels,
    )

    if rate == 0:
        return labels.copy()
    py = np.bincount(labels, minlength=num_classes) / len(labels)
    matrix = generate_noise_matrix_from_trace(
        num_classes, num_classes * (1 - rate), py=py, frac_zero_noise_rates=sparsity,
        valid_noise_matrix=True, seed=seed,
    )  # fmt: skip
    state = np.random.get_state()  # cleanlab draws from numpy's global generator
    try:
        np.random.seed(seed)
        return np.asarray(generate_noisy_labels(labels, matrix))
    finally:
        np.random.set_state(state)


def instance_noise(
    labels: np.ndarray, num_classes: int, rate: float, *, seed: int, features: np.ndarray
) -> np.ndarray:
    """Instance-dependent noise (Xia et al., NeurIPS 2020): per sample a flip rate
    q_n ~ TruncNormal(rate, 0.1, [0, 1]); W ~ N(0, 1) of shape K x S x K over the flattened
    features x_n (S values, standardised); a = x_n W[y_n], a_y = -inf;
    P = q_n * softmax(a), P_y = 1 - q_n; the given label is drawn from P."""
    from scipy.stats import truncnorm

    rng = np.random.default_rng(seed)
    n = len(labels)
    x = np.asarray(features, dtype=np.float64).reshape(n, -1)
    x = (x - x.mean(axis=0)) / np.clip(x.std(axis=0), 1e-8, None) / np.sqrt(x.shape[1])
    sd = 0.1
    q = truncnorm.rvs(
        (0 - rate) / sd, (1 - rate) / sd, loc=rate, scale=sd, size=n, random_state=rng
    )
    w = rng.standard_normal((num_classes, x.shape[1], num_classes))
    given = labels.copy()
    for c in range(num_classes):
        rows = np.flatnonzero(labels == c)
        a = x[rows] @ w[c]
        a[:, c] = -np.inf
        p = np.exp(a - a.max(axis=1, keepdims=True))
        p = q[rows, None] * p / p.sum(axis=1, keepdims=True)
        p[:, c] = 1 - q[rows]
        cumulative = p.cumsum(axis=1)
        draws = rng.random(len(rows))[:, None]
        given[rows] = np.minimum((draws > cumulative).sum(axis=1), num_classes - 1)
    return given


def inject_noise(
    labels: np.ndarray,
    num_classes: int,
    *,
    kind: str,
    rate: float,
    seed: int,
    sparsity: float = 0.0,
    features: np.ndarray | None = None,
) -> NoisyLabels:
    """Noise of type `kind` at nominal `rate`; `sparsity` is for asymmetric noise, `features`
    (one row per sample) for instance-dependent noise."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1), not {rate}")
    labels = np.asarray(labels, dtype=np.int64)
    if kind == "symmetric":
        given = symmetric_noise(labels, num_classes, rate, seed=seed)
    elif kind == "pair":
        given = pair_noise(labels, num_classes, rate, seed=seed)
    elif kind == "asymmetric":
        given = asymmetric_noise(labels, num_classes, rate, seed=seed, sparsity=sparsity)
    elif kind == "instance":
        if features is None:
            raise ValueError("instance noise needs the samples' features")
        given = instance_noise(labels, num_classes, rate, seed=seed, features=features)
    else:
        raise ValueError(f"unknown noise type {kind!r}; choose from {', '.join(NOISE_TYPES)}")
    given = np.asarray(given, dtype=np.int64)
    return NoisyLabels(given=given, true=labels.copy(), mask=given != labels)
