"""What training leaves behind, read by the detectors (`auditor.scoring`), the report and the
review, which never run a model themselves: per method, its signals, final probabilities and
embeddings (computed once at the end of its training by the engine), and the report's CAM
gallery (drawn once by `auditor.training.gallery` when the suspects are known, after scoring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from auditor.detectors.registry import SIGNAL


@dataclass
class MethodEvidence:
    """What one method's training left behind for the detectors."""

    name: str
    signals: dict[str, np.ndarray]  # [epochs, N]
    final_probs: np.ndarray  # [N, K], final model, un-augmented images (in-sample)
    oos_probs: np.ndarray | None = None  # [N, K], cross-fitted, when --folds >= 2
    embeddings: np.ndarray | None = None  # [N, C], final model's pooled features
    final_labels: np.ndarray | None = None  # [N] labels a relabelling method (SCN) ended on
    relabel_events: dict[str, np.ndarray] = field(default_factory=dict)
    # --aum-threshold: per extra training, (mean margin [N], its threshold samples [N] bool)
    aum_runs: list[tuple[np.ndarray, np.ndarray]] | None = None
    # the final model's flip attention [N] (`auditor.training.attention`); None without CAMs
    flip_attention: np.ndarray | None = None
    # [N, K] the model after the epoch of best test accuracy (1-based `best_epoch`), in-sample;
    # None without a test split
    best_probs: np.ndarray | None = None
    best_epoch: int | None = None
    # [epochs, N, K] each epoch's training-view probabilities (`TrainResult.epoch_probs`)
    epoch_probs: np.ndarray | None = None
    # per epoch, the accuracy on the test split (or the validation split's given labels)
    epoch_accuracy: list[float] = field(default_factory=list)
    # [N, K] the early-learning reading (`auditor.early_learning`), when the run memorises
    early_probs: np.ndarray | None = None

    @property
    def probs(self) -> np.ndarray:
        """The probabilities the probability detectors read, the least memorised the run has:
        out-of-sample (--folds), else the early-learning reading when the run memorises, else
        the model at its epoch of best test accuracy, else the final model's."""
        if self.oos_probs is not None:
            return self.oos_probs
        if self.early_probs is not None:
            return self.early_probs
        return self.best_probs if self.best_probs is not None else self.final_probs

    @property
    def relabels(self) -> bool:
        return self.final_labels is not None

    def inputs(self, reads: tuple[str, ...], labels: np.ndarray) -> list[Any] | None:
        """The values of the inputs named in `reads` (see `auditor.detectors.registry`), or
        None when this evidence lacks one of them."""
        embeddings = (
            self.embeddings if self.embeddings is not None and len(self.embeddings) else None
        )
        available = {"labels": labels, "probs": self.probs, "final_probs": self.final_probs,
                     "embeddings": embeddings, "final_labels": self.final_labels,
                     "flip_attention": self.flip_attention}  # fmt: skip
        values = [
            self.signals.get(r[len(SIGNAL) :]) if r.startswith(SIGNAL) else available[r]
            for r in reads
        ]
        return None if any(v is None for v in values) else values


@dataclass(frozen=True)
class Gallery:
    """The top suspects as the report shows them: their images and the CAMs of one class per
    image, on the image and on its mirror image (mirrored back)."""

    rows: np.ndarray  # [n] rows of samples.parquet
    images: np.ndarray  # uint8 [n, C, H, W]
    cams: np.ndarray  # [n, h, w]
    mirror_cams: np.ndarray  # [n, h, w]
    method: str  # the method whose model drew them
