"""Detectors that read the per-epoch training signals ([epochs, N] arrays, recorded on the
augmented view that received the classification loss).

Signals accumulated over epochs keep their power when the final in-sample loss has lost it to
memorisation (the EAC paper's Fig. 5)."""

from __future__ import annotations

import numpy as np


def mean_loss(loss: np.ndarray) -> np.ndarray:
    """score = mean over epochs of -log p(y|x). Higher = more suspect."""
    return loss.mean(axis=0)


def area_under_margin(margin: np.ndarray) -> np.ndarray:
    """AUM (Pleiss et al., NeurIPS 2020): mean over epochs of z_y - max_{k != y} z_k.
    Returned negated, so higher = more suspect (mislabelled samples have low or negative AUM).
    Without threshold samples: ranks, does not decide."""
    return -margin.mean(axis=0)


def mean_flip_cam(flip_cam: np.ndarray) -> np.ndarray:
    """EAC's per-sample flip attention disagreement mean_{k,h,w}(CAM(x) - hflip(CAM(hflip x)))^2,
    averaged over epochs. Higher = the model attends to different parts of the face and of its
    mirror image, which the EAC paper argues happens when it memorises a wrong label. Ours to
    evaluate: no published work uses it as a detector."""
    return flip_cam.mean(axis=0)


def low_importance(alpha: np.ndarray) -> np.ndarray:
    """SCN: 1 - mean over epochs of the importance weight alpha in (0, 1). SCN learns low alpha
    for uncertain or mislabelled samples, so higher = more suspect."""
    return 1.0 - alpha.mean(axis=0)


def mean_uncertainty(uncertainty: np.ndarray) -> np.ndarray:
    """RUL: mean over epochs of u = mean_d exp(log_var). Higher = more uncertain (suspect)."""
    return uncertainty.mean(axis=0)


def mean_distillation_gap(kd: np.ndarray) -> np.ndarray:
    """GSMC: mean over epochs of KL(p_teacher(mirror) || p_student). Higher = the student
    departs from its EMA teacher's view of the mirrored image (suspect)."""
    return kd.mean(axis=0)


def relabelled(final_labels: np.ndarray, given: np.ndarray) -> np.ndarray:
    """SCN: 1.0 where training ended on a label other than the given one, else 0.0. Decides."""
    return (np.asarray(final_labels) != np.asarray(given)).astype(np.float64)


# method-specific signal -> detector of the same name
SIGNAL_DETECTORS = {
    "flip_cam": mean_flip_cam,
    "alpha": low_importance,
    "uncertainty": mean_uncertainty,
    "kd": mean_distillation_gap,
}
