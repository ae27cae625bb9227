"""Label-noise injection for benchmarks with a known answer (docs/methods.md, "Label-noise
injection").

Every function is seeded, returns new labels and never modifies its input; the mask and the
real flip rate come from comparing the result with the input.

A noise model declares itself with `@noise_model(name, options=..., reads_features=...,
reads_class_names=...)` on its function `f(labels, num_classes, rate, *, seed, **options) ->
given labels`: `--noise-type <name>` selects it, and each field of its options dataclass
(`auditor.options`) becomes the flag `--noise-<option>` (asymmetric noise's `--noise-sparsity`),
so option names must differ between models. With `reads_features`, it also gets `features=`
(the training images, one flattened row per sample); with `reads_class_names`, `class_names=`
(the dataset's class names in label order). A model may return a `Drawn` instead of bare labels:
the labels and details (JSON values) that the manifest's `noise` entry records beside its own
keys and the model's options (the matrix models' `matrix`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from auditor.errors import UserError
from auditor.options import NoOptions, Options, option

# the manifest's `noise` entry has these keys of its own beside the model's options
NOISE_KEYS = {"type", "file", "nominal_rate", "real_rate", "seed"}


@dataclass(frozen=True)
class NoiseModel:
    name: str
    function: Callable[..., np.ndarray]
    options_class: type[Options] = NoOptions
    reads_features: bool = False
    reads_class_names: bool = False


NOISE_MODELS: dict[str, NoiseModel] = {}


def noise_model(
    name: str,
    *,
    options: type[Options] = NoOptions,
    reads_features: bool = False,
    reads_class_names: bool = False,
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register the decorated function as noise model `name`; returns it unchanged."""
    taken = NOISE_KEYS | {f.name for m in NOISE_MODELS.values() for f in fields(m.options_class)}
    clash = taken & {f.name for f in fields(options)}
    if name in NOISE_MODELS or clash:
        raise ValueError(f"noise model {name!r}: the name or options {sorted(clash)} are taken")

    def register(function: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        NOISE_MODELS[name] = NoiseModel(name, function, options, reads_features, reads_class_names)
        return function

    return register


@dataclass(frozen=True)
class AsymmetricOptions(Options):
    sparsity: float = option(
        0.0, "asymmetric noise: fraction of zero off-diagonal noise rates", at_least=0, at_most=1
    )


@dataclass(frozen=True)
class MatrixOptions(Options):
    matrix_file: str | None = option(
        None,
        "matrix noise: a K x K row-stochastic CSV, row = true class, column = given class, "
        "optionally under a header of class names; scaled to --noise-rate",
        name="matrix",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.matrix_file is not None:
            from auditor.datasets import noise_matrix as nm

            nm.read_matrix_csv(Path(self.matrix_file))  # a bad file is refused before any loading


@dataclass(frozen=True)
class Drawn:
    """What a noise model may return instead of bare labels: the given labels and `details`
    for the manifest's `noise` entry (JSON values; keys other than NOISE_KEYS and the model's
    options)."""

    given: np.ndarray
    details: dict


@dataclass(frozen=True)
class NoisyLabels:
    given: np.ndarray  # the labels a model trains on
    true: np.ndarray  # the labels before injection
    mask: np.ndarray  # given != true
    details: dict = field(default_factory=dict)  # the model's `Drawn.details`, for the manifest

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
        num_classes,
        num_classes * (1 - rate),
        py=py,
        frac_zero_noise_rates=sparsity,
        valid_noise_matrix=True,
        seed=seed,
    )
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


def matrix_drawn(
    labels: np.ndarray,
    rate: float,
    seed: int,
    class_names: Sequence[str],
    matrix: np.ndarray,
    what: str,
) -> Drawn:
    """Labels drawn from `matrix` (rows and columns in label order) scaled to `rate`
    (`noise_matrix.scale_to_rate`), with the manifest's details: the matrix used, the class
    names of its rows and columns, the scale s and the source matrix's own rate."""
    from auditor.datasets import noise_matrix as nm

    used, scale, native = nm.scale_to_rate(
        matrix, labels, rate, what=what, class_names=list(class_names)
    )
    return Drawn(
        nm.draw_from_matrix(labels, used, seed),
        {
            "matrix": used.tolist(),
            "class_names": list(class_names),
            "scale": scale,
            "native_rate": native,
        },
    )


@noise_model("human-fer", reads_class_names=True)
def human_fer_noise(
    labels: np.ndarray, num_classes: int, rate: float, *, seed: int, class_names: Sequence[str]
) -> Drawn:
    """Human FER noise: the confusion of FERPlus's taggers, T[i, j] = P(one tagger votes j |
    the plurality is i) (row = true class; estimated from FERPlus's votes, MIT licence, and
    shipped as `auditor/datasets/human_fer.csv`), mapped onto `class_names` by expression
    name (7 classes: renormalised without contempt; other names refused), then scaled so that
    the expected flip rate is `rate`: N[i, j] = s T[i, j] off the diagonal, s = rate /
    sum_i p_i m_i (`auditor.datasets.noise_matrix` has the estimate, the mapping and the
    scaling)."""
    from auditor.datasets import noise_matrix as nm

    matrix = nm.expression_matrix(list(class_names), nm.human_fer_matrix())
    return matrix_drawn(labels, rate, seed, class_names, matrix, "human-fer noise")


@noise_model("matrix", options=MatrixOptions, reads_class_names=True)
def matrix_noise(
    labels: np.ndarray,
    num_classes: int,
    rate: float,
    *,
    seed: int,
    class_names: Sequence[str],
    matrix_file: str | None = None,
) -> Drawn:
    """Class-conditional noise from a K x K row-stochastic matrix in a CSV file
    (`--noise-matrix FILE`; row = true class, column = given class; format in
    `auditor.datasets.noise_matrix`), scaled to `rate` like human-fer noise: the file gives
    where each class's flips go and how noisy each class is relative to the others; at
    `rate` = the file's own rate on these labels (the manifest's `native_rate`) it is used as
    it is."""
    if matrix_file is None:
        raise UserError(
            "--noise-type matrix needs --noise-matrix FILE (a K x K row-stochastic CSV, row = "
            "true class, column = given class)"
        )
    from auditor.datasets import noise_matrix as nm

    matrix = nm.matrix_for_classes(Path(matrix_file), list(class_names))
    return matrix_drawn(labels, rate, seed, class_names, matrix, f"the matrix of {matrix_file}")


def inject_noise(
    labels: np.ndarray,
    num_classes: int,
    *,
    kind: str,
    rate: float,
    seed: int,
    features: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    **options,
) -> NoisyLabels:
    """Noise of model `kind` at nominal `rate`, with that model's `options` (by field name,
    e.g. asymmetric noise's `sparsity`); `features` (one row per sample) for models that read
    them (instance-dependent noise), `class_names` (label order) for those that read them
    (human-fer and matrix noise)."""
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
    if model.reads_class_names:
        if class_names is None or len(class_names) != num_classes:
            raise ValueError(f"{kind} noise needs the {num_classes} class names")
        extra["class_names"] = list(class_names)
    labels = np.asarray(labels, dtype=np.int64)
    out = model.function(labels, num_classes, rate, seed=seed, **extra)
    details = out.details if isinstance(out, Drawn) else {}
    clash = set(details) & (NOISE_KEYS | {f.name for f in fields(model.options_class)})
    if clash:
        raise ValueError(f"{kind} noise: its details {sorted(clash)} clash with the noise entry")
    given = np.asarray(out.given if isinstance(out, Drawn) else out, np.int64)
    return NoisyLabels(given=given, true=labels.copy(), mask=given != labels, details=details)
