"""Label-noise injection for benchmarks with a known answer (docs/methods.md, "Label-noise injection").

Every function is seeded, returns new labels and never modifies its input; the mask and the
real flip rate come from comparing the result with the input.

A noise model declares itself with `@noise_model(name, options=..., reads_features=...)` on its
function `f(labels, num_classes, rate, *, seed, **options) -> given labels`: `--noise-type
<name>` selects it, and each field of its options dataclass (`auditor.options`) becomes the
flag `--noise-<option>` (asymmetric noise's `--noise-sparsity`), so option names must differ
between models. With `reads_features`, it also gets `features=` (the training images, one
flattened row per sample).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np

from auditor.options import NoOptions, Options, option

# the manifest's `noise` entry has these keys of its own beside the model's options
NOISE_KEYS = {"type", "file", "nominal_rate", "real_rate", "seed"}


@dataclass(frozen=True)
class NoiseModel:
    name: str
    function: Callable[..., np.ndarray]
    options_class: type[Options] = NoOptions
    reads_features: bool = False


NOISE_MODELS: dict[str, NoiseModel] = {}


def noise_model(
    name: str, *, options: type[Options] = NoOptions, reads_features: bool = False
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register the decorated function as noise model `name`; returns it unchanged."""
    taken = NOISE_KEYS | {f.name for m in NOISE_MODELS.values() for f in fields(m.options_class)}
    clash = taken & {f.name for f in fields(options)}
    if name in NOISE_MODELS or clash:
        raise ValueError(f"noise model {name!r}: the name or options {sorted(clash)} are taken")

    def register(function: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        NOISE_MODELS[name] = NoiseModel(name, function, options, reads_features)
        return function

    return register


@dataclass(frozen=True)
class AsymmetricOptions(Options):
    sparsity: float = option(
        0.0, "asymmetric noise: fraction of zero off-diagonal noise rates", at_least=0, at_most=1
    )


@dataclass(frozen=True)
class NoisyLabels:
    given: np.ndarray  # the labels a model trains on
    true: np.ndarray  # the labels before injection
    mask: np.ndarray  # given != true

    @property
    def real_rate(self) -> float:
        return float(self.mask.mean()) if len(self.mask) else 0.0


@noise_model("symmetric")
def symmetric_noise(labels: np.ndarray, num_classes: int, rate: float, *, seed: int) -> np.ndarray:
    """Flip-to-other: with probability `rate` replace y by a uniform draw from the other K - 1
    classes (the protocol of the published RAF-DB noise files)."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < rate
    shift = rng.integers(1, num_classes, size=len(labels))
    return np.where(flip, (labels + shift) % num_classes, labels)


@noise_model("pair")
def pair_noise(labels: np.ndarray, num_classes: int, rate: float, *, seed: int) -> np.ndarray:
    """Pair flipping: with probability `rate` replace y by (y + 1) mod K."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < rate
    return np.where(flip, (labels + 1) % num_classes, labels)


@noise_model("asymmetric", options=AsymmetricOptions)
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


@noise_model("instance", reads_features=True)
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
    features: np.ndarray | None = None,
    **options,
) -> NoisyLabels:
    """Noise of model `kind` at nominal `rate`, with that model's `options` (by field name,
    e.g. asymmetric noise's `sparsity`); `features` (one row per sample) for models that read
    them (instance-dependent noise)."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be in [0, 1), not {rate}")
    if kind not in NOISE_MODELS:
        raise ValueError(f"unknown noise type {kind!r}; choose from {', '.join(NOISE_MODELS)}")
    model = NOISE_MODELS[kind]
    extra = asdict(model.options_class(**options))
    if model.reads_features:
        if features is None:
            raise ValueError(f"{kind} noise needs the samples' features")
        extra["features"] = features
    labels = np.asarray(labels, dtype=np.int64)
    given = np.asarray(model.function(labels, num_classes, rate, seed=seed, **extra), np.int64)
    return NoisyLabels(given=given, true=labels.copy(), mask=given != labels)
