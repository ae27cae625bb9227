"""Out-of-sample probabilities by K-fold cross-fitting: each fold's model is trained on the
other K - 1 folds and predicts only the samples it never saw (what confident learning needs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from auditor.datasets.pixel_map import Pixels, take
from auditor.errors import UserError
from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig, checkpoint_for, predict, train
from methods.base import Method


def check_folds(labels: np.ndarray, folds: int) -> None:
    """Refuse K-fold cross-fitting (folds >= 2) when a class has fewer than K samples: a
    stratified split needs one of each class in every fold. Checked before any training."""
    counts = np.bincount(labels)
    if folds >= 2 and counts[counts > 0].min() < folds:
        raise UserError(
            f"--folds {folds}: the smallest class has only {counts[counts > 0].min()} training "
            "samples; use fewer folds or more data"
        )


def fold_indices(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (train, held-out) index pairs; every sample is held out exactly once."""
    check_folds(labels, folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def cross_fit(
    make_method: Callable[[int], Method],
    pixels: Pixels,
    labels: np.ndarray,
    normalize: Normalizer,
    config: TrainConfig,
    folds: int,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """probs [N, K]: row i predicted by the one fold model that did not train on sample i."""
    probs: np.ndarray | None = None
    for k, (fit, held_out) in enumerate(fold_indices(labels, folds, config.seed)):
        fold_config = replace(
            config, seed=config.seed + 1 + k, checkpoint=checkpoint_for(config, f"fold{k + 1}")
        )
        method = make_method(fold_config.seed)
        train(
            method,
            take(pixels, fit),
            torch.from_numpy(labels[fit]),
            None,
            None,
            normalize,
            fold_config,
            progress=progress,
            final_pass=False,
        )
        logits, _ = predict(
            method, take(pixels, held_out), normalize, config.device, amp=config.amp
        )
        fold_probs = torch.softmax(logits, dim=1).numpy()
        if probs is None:
            probs = np.zeros((len(labels), fold_probs.shape[1]), dtype=np.float32)
        probs[held_out] = fold_probs
    return probs
