"""AUM threshold samples (Pleiss et al., NeurIPS 2020), `--aum-threshold`.

Two extra trainings per method. In each, a random N / (K + 1) of the samples are relabelled to
a fake class K; the detectors then flag the real samples whose AUM is below the 99th percentile
of the fake ones (`auditor.detectors.dynamics.aum_threshold_decision`). The second run uses a
disjoint subset, so the samples that served as threshold samples in the first are judged by the
second, as the paper does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from auditor.datasets.pixel_map import Pixels
from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig, checkpoint_for, train
from methods.base import Method


def threshold_subsets(n: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint boolean masks of N // (K + 1) samples each."""
    size = n // (num_classes + 1)
    order = np.random.default_rng(seed).permutation(n)
    first, second = np.zeros(n, bool), np.zeros(n, bool)
    first[order[:size]] = True
    second[order[size : 2 * size]] = True
    return first, second


def aum_threshold_run(
    make_method: Callable[[int, int], Method],
    pixels: Pixels,
    labels: np.ndarray,
    num_classes: int,
    normalize: Normalizer,
    config: TrainConfig,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per threshold-sample training, (AUM un-negated: mean margin over epochs [N], its
    threshold samples [N] bool). `make_method(seed, classes)` builds a fresh model."""
    runs = []
    for run, subset in enumerate(threshold_subsets(len(labels), num_classes, config.seed)):
        fake = np.where(subset, num_classes, labels)
        run_config = replace(
            config, seed=config.seed + 100 + run, checkpoint=checkpoint_for(config, f"aum{run + 1}")
        )
        result = train(
            make_method(run_config.seed, num_classes + 1),
            pixels,
            torch.from_numpy(fake),
            None,
            None,
            normalize,
            run_config,
            progress=progress,
            final_pass=False,
        )
        runs.append((result.signals["margin"].mean(axis=0), subset))
    return runs
