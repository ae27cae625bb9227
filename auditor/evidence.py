"""What training leaves behind, read by the detectors (`auditor.scoring`), the report and the
review, which never run a model themselves: per method, its `MethodEvidence` (the training
engine's output, `auditor.training.engine.train`: its per-epoch signals and probabilities, the
final and best-epoch models' probabilities and embeddings, computed once at the end of its
training; cross-fitting and AUM's threshold runs add theirs with `dataclasses.replace`), and the
report's CAM gallery (drawn once by `auditor.training.gallery` when the suspects are known,
after scoring).

The inputs a detector may read (`auditor.detectors.registry.detector(reads=...)`) are declared
here, beside the fields they come from: `INPUTS`, and `SIGNAL<name>` for a per-epoch signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# what a detector may read: the given labels and these evidence values (`MethodEvidence.inputs`)
INPUTS = ("labels", "probs", "final_probs", "embeddings", "final_labels", "flip_attention")
SIGNAL = "signal:"  # `signal:<name>`: the per-epoch signal <name>, [epochs, N]
EVENT_COLUMNS = ("index", "epoch", "from_label", "to_label")  # of `relabel_events`


# the frozen pre-trained features' evidence (`auditor.training.frozen`), read as frozen_<detector>
FROZEN = "frozen"


@dataclass
class MethodEvidence:
    """What one method's training left behind for the detectors: the engine fills every field
    but `oos_probs` (--folds), `aum_runs` (--aum-threshold) and the early-learning readings
    (`early_probs`, `early_count_probs`: scoring)."""

    name: str
    signals: dict[str, np.ndarray]  # [epochs, N]
    final_probs: np.ndarray  # [N, K], final model, un-augmented images (in-sample)
    oos_probs: np.ndarray | None = None  # [N, K], cross-fitted, when --folds >= 2
    embeddings: np.ndarray | None = None  # [N, C], final model's pooled features
    final_labels: np.ndarray | None = None  # [N] labels a relabelling method (SCN) ended on
    # a relabelling method's relabellings, EVENT_COLUMNS -> [E], by epoch then sample
    relabel_events: dict[str, np.ndarray] = field(default_factory=dict)
    # --aum-threshold: per extra training, (mean margin [N], its threshold samples [N] bool)
    aum_runs: list[tuple[np.ndarray, np.ndarray]] | None = None
    # the final model's flip attention [N] (`auditor.training.attention`); None without CAMs
    flip_attention: np.ndarray | None = None
    # [N, K] the model after the epoch of best test accuracy (1-based `best_epoch`), in-sample;
    # None without a test split
    best_probs: np.ndarray | None = None
    best_epoch: int | None = None
    # [epochs, N, K] float16: each epoch's softmax of the view that received the classification
    # loss, read in the step before the model trained on it that epoch (held-out samples: the
    # eval-mode model after the epoch); `auditor.early_learning` averages the epochs before the
    # wrong labels are fitted
    epoch_probs: np.ndarray | None = None
    # per epoch, the accuracy on the test split (or the validation split's given labels); empty
    # without either
    epoch_accuracy: list[float] = field(default_factory=list)
    # [N, K] the early-learning reading (`auditor.early_learning`), when the run memorises: what
    # the probability detectors read, and what confident learning's count reads
    early_probs: np.ndarray | None = None
    early_count_probs: np.ndarray | None = None

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
    def count_probs(self) -> np.ndarray:
        """The probabilities confident learning counts the wrong labels on: the early-learning
        count reading when the run memorises (earlier than `probs`, `auditor.early_learning`),
        else `probs`."""
        if self.oos_probs is None and self.early_count_probs is not None:
            return self.early_count_probs
        return self.probs

    @property
    def relabels(self) -> bool:
        return self.final_labels is not None

    def inputs(self, reads: tuple[str, ...], labels: np.ndarray) -> list[Any] | None:
        """The values of the inputs named in `reads` (see `auditor.detectors.registry`), or
        None when this evidence lacks one of them."""
        embeddings = (
            self.embeddings if self.embeddings is not None and len(self.embeddings) else None
        )
        available = {name: getattr(self, name) for name in INPUTS[1:]}
        available |= {"labels": labels, "embeddings": embeddings}
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
