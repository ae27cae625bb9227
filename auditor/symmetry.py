"""Mirror symmetry: does a mirrored image keep its class? Faces and clothes do; digits and text
do not, and there a random horizontal flip teaches a wrong invariance and the losses that make
an image and its mirror agree (EAC, GSMC: `Method.needs_mirror_symmetry`) are the wrong tool.

The rule, first answer wins:

1. `--flip` / `--no-flip`: the user says.
2. `mirror_symmetric: true|false` in the dataset's `datasets.yaml` entry.
3. Measured: a model trained without flips classifies the held-out images (balanced accuracy
   a) and the same images mirrored (m); symmetric when m >= SYMMETRY_RATIO * a. The
   measurement says nothing when a model is not clearly above chance,
   a <= chance_floor(K) = 1/K + CHANCE_MARGIN for K classes: then rule 4.
4. Unknown: no flips (a flip that changes the class mislabels an image; a symmetry left unused
   costs only some augmentation), and `--flip` is named as the way to say otherwise.

Without flips, the methods that need mirror symmetry are refused when the user named them in
`--method`, and dropped with a warning when they came from the defaults (`methods_for_mirror`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from auditor.datasets.pixel_map import Pixels
from auditor.errors import UserError
from auditor.training.augment import Normalizer
from methods import METHODS
from methods.base import Method

# Mirrored accuracy at least this share of the original accuracy counts as mirror-symmetric.
# Measured (3-epoch probe, balanced accuracy, 30% noise, seed 0; bench/own_folder.py): digits
# 0.38-0.54 (a mirror changes them), Fashion-MNIST 0.79-0.90 (a mirror keeps the class, but every
# shoe points left, so the mirror images are rarer views), bars on one side
# (tests/test_own_folder.py) 0.33. The ratio's standard error on 300 held-out images at 40%
# accuracy is about 0.09: Fashion-MNIST under instance noise (0.79) is near the threshold.
SYMMETRY_RATIO = 0.75
# Original accuracy must exceed chance, 1/K, by more than this for the measurement to count.
CHANCE_MARGIN = 0.1
SOURCES = ("--flip", "--no-flip", "declared", "measured", "unknown")
DECLARED_KEY = "`mirror_symmetric` in datasets.yaml"
FLIP_HINT = "pass --flip if a mirrored image keeps its class"


@torch.no_grad()
def mirror_accuracy(
    method: Method,
    pixels: Pixels,
    labels: torch.Tensor | np.ndarray,
    normalize: Normalizer,
    device: str,
    amp: bool = False,
    batch_size: int = 512,
) -> tuple[float, float]:
    """(a, m): the balanced accuracy of `method` on the un-augmented images `pixels` (uint8
    [N, C, H, W]) against `labels` [N] (argmax of its logits), and on the same images mirrored
    left-right (x.flip(-1)); in eval mode, the method's mode restored after. Balanced accuracy
    is the mean over the classes present of the share of a class's images classified as it:
    a model that always answers the largest class scores 1/K, not that class's share (on a
    90/10 folder, 0.5 rather than 0.9 on both views, which would read as symmetric)."""
    if len(pixels) == 0:
        raise ValueError("mirror_accuracy needs at least one image")
    targets = torch.as_tensor(labels, dtype=torch.long)
    was_training = method.training
    method.eval()
    predicted: list[list[torch.Tensor]] = [[], []]
    for start in range(0, len(pixels), batch_size):
        x = normalize(pixels[start : start + batch_size].to(device, non_blocking=True))
        for view, image in enumerate((x, x.flip(-1))):
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
                out, _ = method(image.contiguous(memory_format=torch.channels_last))
            predicted[view].append(out.argmax(dim=1).cpu())
    method.train(was_training)
    accuracy, mirrored = (balanced_accuracy(torch.cat(p), targets) for p in predicted)
    return accuracy, mirrored


def balanced_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """mean over the classes c present in `labels` of mean(predicted[labels == c] == c)."""
    classes = labels.unique()
    return float(
        torch.stack([(predicted[labels == c] == c).double().mean() for c in classes]).mean()
    )


def chance_floor(num_classes: int) -> float:
    """1/K + CHANCE_MARGIN: the accuracy a measurement must exceed to say anything."""
    if num_classes < 2:
        raise ValueError(f"a classifier has at least 2 classes, not {num_classes}")
    return 1.0 / num_classes + CHANCE_MARGIN


@dataclass(frozen=True)
class MirrorDecision:
    """Whether to train with random flips (`flip`), who decided (`source`: "--flip",
    "--no-flip", "declared", "measured" or "unknown") and the measured accuracies on the
    held-out images and on their mirror images (None when not measured)."""

    flip: bool
    source: str
    accuracy: float | None = None
    mirrored_accuracy: float | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {SOURCES}")

    def measured_words(self) -> str:
        """The measurement in words ("" when none was made)."""
        if self.accuracy is None or self.mirrored_accuracy is None:
            return ""
        return (
            f"a model trained without flips scores a balanced accuracy of {self.accuracy:.1%} on "
            f"the held-out images and {self.mirrored_accuracy:.1%} on their mirror images"
        )

    def reason(self) -> str:
        """Why `flip` is what it is, as a clause."""
        if self.source in ("--flip", "--no-flip"):
            return self.source
        if self.source == "declared":
            return f"declared {'true' if self.flip else 'false'} by {DECLARED_KEY}"
        if self.source == "measured":
            return f"measured: {self.measured_words()}"
        if self.accuracy is None:
            return f"neither declared by {DECLARED_KEY} nor measured"
        return f"not measurable: {self.measured_words()}, not clearly above chance"

    def sentence(self, dataset: str) -> str:
        """One sentence: what was decided for `dataset`, and why."""
        training = "training with flips" if self.flip else "training without flips"
        if self.source in ("--flip", "--no-flip"):
            return f"{dataset}: {self.source}: {training}."
        if self.source == "declared":
            said = "mirror-symmetric" if self.flip else "not mirror-symmetric"
            return f"{dataset}: declared {said} in datasets.yaml: {training}."
        if self.source == "measured":
            threshold = f"{SYMMETRY_RATIO:.0%} of {self.accuracy:.1%}"
            verdict = (
                f"at least {threshold}: mirror-symmetric"
                if self.flip
                else f"below {threshold}: not mirror-symmetric"
            )
            return (
                f"{dataset}: mirror symmetry measured on held-out images: "
                f"{self.measured_words()} ({verdict}), {training}."
            )
        if self.accuracy is None:
            unknown = "mirror symmetry is neither declared in datasets.yaml nor measured"
        else:
            unknown = (
                f"mirror symmetry could not be measured ({self.measured_words()}, not clearly "
                "above chance)"
            )
        return f"{dataset}: {unknown}: {training}; {FLIP_HINT}."

    def as_dict(self) -> dict[str, bool | str | float | None]:
        """The decision for the run's manifest, with the ratio it was measured against."""
        return {**asdict(self), "symmetry_ratio": SYMMETRY_RATIO}


def decide_mirror(
    flag: bool | None,
    declared: bool | None,
    measured: tuple[float, float] | None,
    num_classes: int,
) -> MirrorDecision:
    """The module's rule: `flag` (--flip True, --no-flip False, None: not given) > `declared`
    (the registry's `mirror_symmetric`) > `measured` ((a, m) of `mirror_accuracy`) > unknown,
    which trains without flips. A measurement with a <= chance_floor(num_classes), or not
    finite, is unknown; else symmetric when m >= SYMMETRY_RATIO * a."""
    floor = chance_floor(num_classes)
    if flag is not None:
        return MirrorDecision(flip=flag, source="--flip" if flag else "--no-flip")
    if declared is not None:
        return MirrorDecision(flip=declared, source="declared")
    if measured is None:
        return MirrorDecision(flip=False, source="unknown")
    accuracy, mirrored = measured
    if not (math.isfinite(accuracy) and math.isfinite(mirrored)) or accuracy <= floor:
        return MirrorDecision(False, "unknown", accuracy, mirrored)
    return MirrorDecision(mirrored >= SYMMETRY_RATIO * accuracy, "measured", accuracy, mirrored)


def methods_for_mirror(
    methods: list[str], explicit: bool, decision: MirrorDecision, dataset: str
) -> tuple[list[str], list[str]]:
    """(methods to train, warnings). With flips, `methods` unchanged. Without, the methods that
    need mirror symmetry (`Method.needs_mirror_symmetry`) are refused (UserError) when the
    user named them (`explicit`: --method), else dropped with one warning each; refused too
    when that would leave nothing to train."""
    if decision.flip:
        return list(methods), []
    mirrored = [name for name in methods if METHODS[name].needs_mirror_symmetry]
    if not mirrored:
        return list(methods), []
    kept = [name for name in methods if name not in mirrored]
    why = f"{dataset} trains without flips ({decision.reason()})"
    remedy = "drop --no-flip" if decision.source == "--no-flip" else FLIP_HINT
    if explicit:
        names = " and ".join(f"{name}'s" for name in mirrored)
        losses = "loss makes" if len(mirrored) == 1 else "losses make"
        them = "it" if len(mirrored) == 1 else "them"
        raise UserError(
            f"{names} {losses} the attention maps of an image and of its mirror agree, and "
            f"{why}: drop {them} from --method, or {remedy}"
        )
    if not kept:
        raise UserError(
            f"every method to train ({', '.join(mirrored)}) makes the attention maps of an "
            f"image and of its mirror agree, and {why}: pass --method ce (or another method "
            f"without a mirror view), or {remedy}"
        )
    warnings = [
        f"{name} is not trained: its loss makes the attention maps of an image and of its "
        f"mirror agree, and {why}; {remedy}"
        for name in mirrored
    ]
    return kept, warnings
