"""The frozen pre-trained features' evidence (auditor.training.frozen): out-of-sample
probabilities from a cross-validated logistic regression, its accuracy, its refusals."""

import numpy as np
import torch

from auditor.training.augment import Normalizer
from auditor.training.frozen import FROZEN, frozen_evidence, trust_accuracy
from methods import METHODS
from methods.backbones import build_backbone


def banded(labels: np.ndarray, seed: int) -> torch.Tensor:
    """uint8 [N, 1, 16, 16]: class k is a bright band across rows 5k..5k+4, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), 1, 16, 16))
    for i, k in enumerate(labels):
        images[i, 0, 5 * k : 5 * k + 5] += 180
    return torch.from_numpy(images.astype(np.uint8))


def model() -> object:
    torch.manual_seed(0)
    return METHODS["ce"](build_backbone("resnet-small", 1), 3)


def without_test_split(given: np.ndarray, image_seed: int, held_out: np.ndarray | None):
    """`frozen_evidence` on banded images of the given classes, with no test split."""
    images = banded(given, image_seed)
    no_test = np.array([], dtype=int)
    return frozen_evidence(
        model(), images, given, None, no_test, Normalizer.imagenet(1), "cpu", held_out, 0
    )


def test_wrong_labels_read_out_of_sample_and_accuracy_on_the_test_split():
    true = np.repeat([0, 1, 2], 30)
    given = true.copy()
    wrong = np.array([3, 40, 75])
    given[wrong] = (true[wrong] + 1) % 3
    test_labels = np.repeat([0, 1, 2], 10)
    ev = frozen_evidence(
        model(),
        banded(true, 0),
        given,
        banded(test_labels, 1),
        test_labels,
        Normalizer.imagenet(1),
        "cpu",
        None,
        0,
    )
    assert ev.name == FROZEN and ev.signals == {}
    assert ev.oos_probs.shape == (90, 3) and np.allclose(ev.oos_probs.sum(axis=1), 1)
    assert ev.probs is ev.oos_probs and ev.embeddings.shape[0] == 90
    p_given = ev.oos_probs[np.arange(90), given]
    # out of sample: a wrong label is not learnt from the sample itself
    assert (p_given[wrong] < 0.5).all() and np.median(p_given) > 0.5
    assert len(ev.epoch_accuracy) == 1 and ev.epoch_accuracy[0] >= 0.9


def test_without_a_test_split_the_accuracy_is_the_held_out_rows_out_of_sample():
    true = np.repeat([0, 1, 2], 20)
    held_out = np.arange(0, 60, 4)
    ev = without_test_split(true, 2, held_out)
    expected = (ev.oos_probs[held_out].argmax(axis=1) == true[held_out]).mean()
    assert ev.epoch_accuracy == [expected]
    assert without_test_split(true, 2, None).epoch_accuracy == []


def test_a_class_with_a_single_sample_gives_no_reading():
    given = np.array([0] * 10 + [1] * 10 + [2])
    assert without_test_split(given, 3, None) is None


def test_the_frozen_reading_joins_within_tolerance_but_never_displaces_a_trained_method():
    trained = {"ce": 0.70, "eac": 0.76}
    assert trust_accuracy(0.90, trained) == 0.76  # better: capped, ce and eac stay as they were
    assert trust_accuracy(0.75, trained) == 0.75  # within the tolerance of eac: joins
    assert trust_accuracy(0.60, trained) == 0.60  # far below: left out by the trust rule
    assert trust_accuracy(None, trained) is None and trust_accuracy(0.8, {"ce": None}) == 0.8
