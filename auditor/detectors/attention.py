"""The flip-attention detector: the final model's class activation map of the given label on an
image and on its mirror (`auditor.training.attention`), for every method with CAMs. Ours to
evaluate (the EAC paper uses flip consistency as a loss, not as a detector); the README reports
where it carries signal."""

from __future__ import annotations

import numpy as np

from auditor.detectors.registry import detector


@detector("flip_attention", reads=("flip_attention",))
def flip_attention(flip_attention: np.ndarray) -> np.ndarray:
    """sum_{h,w} (A - B)^2 / sum_{h,w} (A^2 + B^2), A = CAM_y(x), B = hflip(CAM_y(hflip x)) of
    the final model, y the given label: higher = the given class's map of the image and of its
    mirror disagree more = more suspect."""
    return np.asarray(flip_attention, dtype=np.float64)
