"""AUM threshold samples (Pleiss et al., NeurIPS 2020), `--aum-threshold`.

Two extra trainings per method. In each, a random N / (K + 1) of the samples are relabelled to
a fake class K; after training, `aum_threshold_flags` flags the real samples whose AUM is below
the 99th percentile of the fake ones. The second run uses a disjoint subset, so the samples
that served as threshold samples in the first are judged by the second, as the paper does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from auditor.detectors.dynamics import aum_threshold_flags
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
    pixels: torch.Tensor,
    labels: np.ndarray,
    num_classes: int,
    normalize: Normalizer,
    config: TrainConfig,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[float]]:
    """(flags [N], the two thresholds). `make_method(seed, classes)` builds a fresh model."""
    flags = np.zeros(len(labels), dtype=bool)
    thresholds = []
    subsets = threshold_subsets(len(labels), num_classes, config.seed)
    for run, subset in enumerate(subsets):
        fake = np.where(subset, num_classes, labels)
        run_config = replace(
            config, seed=config.seed + 100 + run, checkpoint=checkpoint_for(config, f"aum{run + 1}")
        )
        result = train(make_method(run_config.seed, num_classes + 1), pixels, torch.from_numpy(fake),
                       None, None, normalize, run_config, progress=progress, final_pass=False)  # fmt: skip
        run_flags, threshold = aum_threshold_flags(result.signals["margin"].mean(axis=0), subset)
        judged = ~subsets[1] if run == 0 else subsets[1]  # run 2 judges the samples run 1 could not
        flags[judged] = run_flags[judged]
        thresholds.append(threshold)
    return flags, thresholds
