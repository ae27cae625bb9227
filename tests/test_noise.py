import numpy as np
import pytest

from auditor.datasets.noise import inject_noise


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_symmetric_noise_rate_and_flip_to_other(rate):
    labels = np.repeat(np.arange(7), 3000)
    noisy = inject_noise(labels, 7, kind="symmetric", rate=rate, seed=3)
    # Bernoulli(p) per sample; every draw flips to a *different* class
    assert abs(noisy.real_rate - rate) < 4 * np.sqrt(rate * (1 - rate) / len(labels))
    assert np.array_equal(noisy.mask, noisy.given != labels)
    assert np.array_equal(noisy.true, labels)
    # the new class is uniform over the other six
    for c in range(7):
        targets = noisy.given[noisy.mask & (labels == c)]
        counts = np.bincount(targets, minlength=7)
        assert counts[c] == 0
        others = np.delete(counts, c)
        assert others.min() > 0.7 * others.mean()


def test_pair_noise_moves_to_the_next_class():
    labels = np.repeat(np.arange(5), 1000)
    noisy = inject_noise(labels, 5, kind="pair", rate=0.3, seed=0)
    assert np.array_equal(noisy.given[noisy.mask], (labels[noisy.mask] + 1) % 5)
    assert 0.27 < noisy.real_rate < 0.33


def test_noise_is_seeded_and_leaves_input_alone():
    labels = np.arange(10).repeat(50)
    before = labels.copy()
    a = inject_noise(labels, 10, kind="symmetric", rate=0.3, seed=1)
    b = inject_noise(labels, 10, kind="symmetric", rate=0.3, seed=1)
    c = inject_noise(labels, 10, kind="symmetric", rate=0.3, seed=2)
    assert np.array_equal(a.given, b.given)
    assert not np.array_equal(a.given, c.given)
    assert np.array_equal(labels, before)


def test_bad_noise_settings_are_refused():
    with pytest.raises(ValueError):
        inject_noise(np.zeros(3, int), 2, kind="symmetric", rate=1.0, seed=0)
    with pytest.raises(ValueError):
        inject_noise(np.zeros(3, int), 2, kind="other", rate=0.1, seed=0)


def test_asymmetric_noise_follows_a_class_conditional_matrix():
    labels = np.repeat(np.arange(5), 2000)
    noisy = inject_noise(labels, 5, kind="asymmetric", rate=0.3, seed=0, sparsity=0.6)
    assert 0.25 < noisy.real_rate < 0.35
    again = inject_noise(labels, 5, kind="asymmetric", rate=0.3, seed=0, sparsity=0.6)
    assert np.array_equal(noisy.given, again.given)
    # sparsity: many (true, given) off-diagonal pairs never occur
    pairs = {(t, g) for t, g in zip(labels[noisy.mask], noisy.given[noisy.mask], strict=True)}
    assert len(pairs) < 5 * 4


def test_instance_noise_rate_and_dependence_on_the_input():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 1500)
    features = rng.normal(size=(6000, 20))
    noisy = inject_noise(labels, 4, kind="instance", rate=0.3, seed=2, features=features)
    assert 0.26 < noisy.real_rate < 0.34
    assert np.array_equal(noisy.given[~noisy.mask], labels[~noisy.mask])
    # the flip target depends on x: two copies of the data with different features differ
    other = inject_noise(labels, 4, kind="instance", rate=0.3, seed=2, features=features[::-1])
    assert not np.array_equal(noisy.given, other.given)
    with pytest.raises(ValueError, match="features"):
        inject_noise(labels, 4, kind="instance", rate=0.3, seed=2)


def test_a_noise_model_declares_itself_with_its_options():
    """A noise model registered from outside the package gets `--noise-type`, its option flag,
    validation and a place in the manifest's config, with no other edit."""
    from dataclasses import dataclass

    from auditor.config import resolve
    from auditor.datasets.noise import NOISE_MODELS, noise_model
    from auditor.errors import UserError
    from auditor.options import Options, option

    @dataclass(frozen=True)
    class ToOneOptions(Options):
        target: int = option(0, "the class every flipped label goes to", at_least=0)

    @noise_model("to-one", options=ToOneOptions)
    def to_one(labels, num_classes, rate, *, seed, target):
        flip = np.random.default_rng(seed).random(len(labels)) < rate
        return np.where(flip, target, labels)

    try:
        noisy = inject_noise(np.arange(6).repeat(500), 6, kind="to-one", rate=0.5, seed=0, target=2)
        assert set(noisy.given[noisy.mask]) == {2}
        c = resolve("demo", {"noise_type": "to-one", "noise_target": 4}, {})
        assert c.noise_models["to-one"].target == 4 and c.as_dict()["noise_target"] == 4
        with pytest.raises(UserError, match="--noise-target -1: must be at least 0"):
            resolve("demo", {"noise_type": "to-one", "noise_target": -1}, {})
        with pytest.raises(UserError, match="--noise-type nope: choose from"):
            resolve("demo", {"noise_type": "nope"}, {})
    finally:
        del NOISE_MODELS["to-one"]
