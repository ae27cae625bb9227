"""Label-noise injection for benchmarks with a known answer (METHODS.md).

Every function is seeded, returns new labels and never modifies its input; the mask and the
real flip rate come from comparing the result with the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_TYPES = ("symmetric", "pair")


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


def inject_noise(
    labels: np.ndarray, num_classes: int, *, kind: str, rate: float, seed: int
) -> NoisyLabels:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1), not {rate}")
    functions = {"symmetric": symmetric_noise, "pair": pair_noise}
    if kind not in functions:
        raise ValueError(f"unknown noise type {kind!r}; choose from {', '.join(NOISE_TYPES)}")
    labels = np.asarray(labels, dtype=np.int64)
    given = functions[kind](labels, num_classes, rate, seed=seed).astype(np.int64)
    return NoisyLabels(given=given, true=labels.copy(), mask=given != labels)
