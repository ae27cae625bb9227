"""The pre-trained backbone read as it is, before any fine-tuning: cleanlab's recipe for images
(its image tutorial; Northcutt et al., 2021), frozen pre-trained features and out-of-sample
probabilities from a cross-validated logistic regression, as one more piece of evidence beside
the trained methods' (named FROZEN). Only a run with `--weights` has it.

Why: fine-tuning a pre-trained backbone on noisy labels for tens of epochs fits the noise and
loses what pre-training learnt, and the frozen features keep it. Measured (bench/detection.py,
one seed, 1,000 audited images, a backbone pre-trained on 6,000 disjoint images): on synthetic
faces under human-fer noise the frozen recipe's normalized margin reaches AP 0.949 while every
fine-tuned reading stays at or below 0.885; on Fashion-MNIST under two-way swaps it reaches
0.546 against the fine-tuned 0.72. So it is not always added: the trust rule
(`auditor.scoring.trusted_methods`) keeps it in the ensemble only when its own accuracy (the
logistic regression fitted on every training sample's given label, read on the test split; or
its out-of-sample accuracy on the held-out validation split) is within the tolerance of the best
trained method's; and it never pushes a trained method out (`trust_accuracy`): its accuracy
says how well it classifies, not how well it ranks wrong labels. Measured on the pre-trained
cells (bench/detection.py, 3 seeds each), where its accuracy beat every fine-tuned method's by
0.02-0.12: letting it push them out made it the ensemble alone, AP 0.932 against 0.953 without
it on Fashion-MNIST under symmetric noise (0.572 against 0.598 under swaps), while beside them
it raised every cell (0.957, 0.620; synthetic faces under human-fer noise 0.934 against 0.890).

Its evidence: `oos_probs` = `final_probs` = the cross-validated probabilities [N, K] (so every
probability detector reads them, suspicion direction as theirs: higher = more suspect),
`embeddings` = the standardised frozen features (the kNN vote), no per-epoch signals.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from auditor.evidence import FROZEN, MethodEvidence
from auditor.training.augment import Normalizer
from auditor.training.engine import Pixels, predict
from methods.base import Method

FOLDS = 5  # cleanlab's tutorial's cross-validation folds
MAX_ITER = 1000


def frozen_features(
    model: Method, pixels: Pixels, normalize: Normalizer, device: str
) -> np.ndarray:
    """[N, C] the pooled features of `model`'s backbone (un-augmented images, eval mode)."""
    with torch.no_grad():
        _, features = predict(model, pixels, normalize, device)
    return features.numpy().astype(np.float64)


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (x - mean) / (std + 1e-6)


def logistic_regression(seed: int) -> LogisticRegression:
    return LogisticRegression(max_iter=MAX_ITER, C=1.0, random_state=seed)


def frozen_evidence(
    model: Method,
    pixels: Pixels,
    given: np.ndarray,
    test_pixels: Pixels | None,
    test_labels: np.ndarray,
    normalize: Normalizer,
    device: str,
    held_out: np.ndarray | None,
    seed: int,
) -> MethodEvidence | None:
    """The FROZEN evidence of `model` (a new model whose backbone holds the --weights, not yet
    trained) on the training images `pixels` with their `given` labels [N]: out-of-sample
    probabilities from min(FOLDS, smallest class) folds, stratified by given label, and the
    accuracy its trust is read on (`epoch_accuracy`, one value): on the test split when there is
    one, else of the out-of-sample predictions on the `held_out` rows, else none. None when a
    given class has fewer than two samples: no two folds can each hold one."""
    classes = model.fc.out_features
    counts = np.bincount(given, minlength=classes)
    folds = int(min(FOLDS, counts[counts > 0].min()))
    if folds < 2 or (counts > 0).sum() < 2:
        return None
    x = frozen_features(model, pixels, normalize, device)
    mean, std = x.mean(axis=0), x.std(axis=0)
    x = standardise(x, mean, std)
    oos = np.zeros((len(given), classes))
    present = np.flatnonzero(counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs's convergence warnings: max_iter is cleanlab's
        probs = cross_val_predict(
            logistic_regression(seed),
            x,
            given,
            cv=StratifiedKFold(folds),
            method="predict_proba",
        )
        oos[:, present] = probs
        accuracy: list[float] = []
        if test_pixels is not None and len(test_labels):
            fitted = logistic_regression(seed).fit(x, given)
            test_x = standardise(frozen_features(model, test_pixels, normalize, device), mean, std)
            accuracy = [float((fitted.predict(test_x) == test_labels).mean())]
        elif held_out is not None and len(held_out):
            accuracy = [float((oos[held_out].argmax(axis=1) == given[held_out]).mean())]
    return MethodEvidence(
        name=FROZEN,
        signals={},
        final_probs=oos,
        oos_probs=oos,
        embeddings=x.astype(np.float32),
        epoch_accuracy=accuracy,
    )


def trust_accuracy(frozen: float | None, trained: dict[str, float | None]) -> float | None:
    """The accuracy the trust rule reads for the FROZEN evidence: its own, capped at the best
    trained method's (`trained`: method -> accuracy), so that it joins the ensemble when within
    the tolerance of the best and never displaces a trained method. None (unknown) stays None."""
    known = [a for a in trained.values() if a is not None]
    if frozen is None or not known:
        return frozen
    return min(frozen, max(known))
