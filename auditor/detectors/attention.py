"""Flip-attention detectors: the final model's attention on an image and on its mirror
(`auditor.training.attention`), for every method with class activation maps. Higher = the two
disagree more = more suspect. Ours to evaluate (the EAC paper uses the disagreement as a loss,
not as a detector); the README reports where they carry signal."""

from __future__ import annotations

import numpy as np

from auditor.detectors.registry import detector


@detector("flip_attention", reads=("flip_attention",))
def flip_attention_all_classes(flip_attention: np.ndarray) -> np.ndarray:
    """mean_{k,h,w} (CAM(x) - hflip(CAM(hflip x)))^2 of the final model, over all classes."""
    return np.asarray(flip_attention, dtype=np.float64)


@detector("flip_attention_given", reads=("flip_attention_given",))
def flip_attention_given_class(flip_attention_given: np.ndarray) -> np.ndarray:
    """mean_{h,w} (CAM_y(x) - hflip(CAM_y(hflip x)))^2 of the final model, for the given label
    y's class map only."""
    return np.asarray(flip_attention_given, dtype=np.float64)
