"""The interface every training method implements. The engine knows nothing about EAC or SCN.

A method owns its backbone and heads, builds its own augmented views of a clean batch (through
the engine's batched `Augmenter`), returns its loss, the logits it classified, any
method-specific per-sample signals, and, for methods that relabel (SCN), the new labels.

A method declares itself in its own module: a `Method` subclass with a `name`, its options as a
frozen dataclass (`options_class`, see `auditor.options`; the CLI flags `--<name>-<option>` are
generated from it) and `@register_method`. Every per-sample signal it records must be read by
a registered detector (`auditor.detectors.registry`); `audit run` refuses a method whose signal
nothing would score. See docs/methods.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from auditor.options import NoOptions, Options, option
from methods.cam import class_activation_maps


class Augment(Protocol):
    """What a method may ask of the engine's batched augmentation."""

    def random_hflip(self, x: torch.Tensor) -> torch.Tensor: ...
    def random_erase(self, x: torch.Tensor) -> torch.Tensor: ...
    def pixel_noise(self, x: torch.Tensor, std: float, p: float) -> torch.Tensor: ...
    def flip_or_noise(self, x: torch.Tensor, std: float) -> torch.Tensor: ...
    def permutation(self, n: int, device: torch.device) -> torch.Tensor: ...


@dataclass
class Batch:
    x: torch.Tensor  # [B, C, H, W] normalised, not augmented
    y: torch.Tensor  # [B] the labels the method trains on now (SCN may have changed them)
    index: torch.Tensor  # [B] sample indices into the training set
    epoch: int  # 0-based


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar, to minimise
    logits: torch.Tensor  # [B, K] the method's prediction for the batch (signals are read from it)
    signals: dict[str, torch.Tensor] = field(default_factory=dict)  # method-specific, each [B]
    new_labels: torch.Tensor | None = None  # [B] labels to train on from now on (relabelling)


class Method(nn.Module):
    """fc(GAP(backbone(x))), plus whatever a subclass adds. Subclasses set `name`,
    `options_class` (a frozen dataclass of their options, with defaults), `extra_signals` (names
    of the per-sample signals their `training_step` returns) and implement `training_step`;
    `after_step` runs after every optimiser step. `needs_mirror_symmetry` is True for a method
    whose loss compares an image with its mirror (EAC, GSMC): it teaches that a mirrored image
    keeps its class, so `audit run` trains it only on mirror-symmetric data
    (`auditor.symmetry`); a method that mirrors only as a random augmentation, through the
    `Augment` it is given, leaves it False (the augmentation stops mirroring instead)."""

    name: ClassVar[str]
    options_class: ClassVar[type[Options]] = NoOptions
    extra_signals: ClassVar[tuple[str, ...]] = ()
    relabels: ClassVar[bool] = False  # True for methods whose StepOutput carries new_labels
    needs_mirror_symmetry: ClassVar[bool] = False  # its loss compares an image with its mirror

    def __init__(
        self, backbone: nn.Module, num_classes: int, options: Options | None = None
    ) -> None:
        super().__init__()
        self.options = self.options_class() if options is None else options
        if not isinstance(self.options, self.options_class):
            raise TypeError(
                f"{self.name} takes {self.options_class.__name__}, not {type(options).__name__}"
            )
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits [N, K], pooled features [N, C]) for evaluation and scoring."""
        pooled = self.backbone(x).mean(dim=(2, 3))
        return self.fc(pooled), pooled

    def training_step(self, batch: Batch, aug: Augment) -> StepOutput:
        raise NotImplementedError

    def after_step(self) -> None:
        """Hook after each optimiser step (GSMC's EMA teacher update)."""

    def param_groups(self, lr: float) -> list[dict]:
        """The optimiser's parameter groups: every trainable parameter at `lr` (a method whose
        official code trains parts at other rates overrides this, as RUL)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def cams(self, fmap: torch.Tensor) -> torch.Tensor | None:
        """Class activation maps [N, K, h, w] of the classifier on the backbone's feature map
        `fmap` [N, C, h, w] (`methods.cam`): the logit minus its bias is their spatial mean.
        None when the classifier does not read the backbone's channels, as CAMs need (a width
        mismatch shows it; a method whose fc reads another head overrides this, as RUL)."""
        if self.fc.in_features != self.backbone.out_channels:
            return None
        return class_activation_maps(fmap, self.fc.weight)


M = TypeVar("M", bound=type[Method])
METHODS: dict[str, type[Method]] = {}


def register_method(cls: M) -> M:
    """Class decorator: make `cls` a method of `audit run --method` under `cls.name`."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"two methods are named {cls.name!r}")
    METHODS[cls.name] = cls
    return cls


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy -log p(y|x)."""
    return F.cross_entropy(logits, y)


# The highest learning rate an option accepts (--lr, --scn-lr): Adam moves every weight by about
# the rate at each step, so at rates above 1 the first steps swamp weights of order 0.1 and the
# loss overflows to NaN (the papers train at 1e-4 to 1e-3).
MAX_LR = 1.0
GAUSSIAN_STD = 30**0.5  # the official EAC, SCN and RUL dataset code: variance 30 on 0-255 pixels
VIEWS = ("official", "flip")


def flip_and_erase(x: torch.Tensor, aug: Augment) -> torch.Tensor:
    """The generic training view: random flip (p = 1/2), then random erasing."""
    return aug.random_erase(aug.random_hflip(x))


def view_option() -> Any:
    """The `view` option of SCN and RUL, declared once."""
    return option(
        "official",
        "official: flip or Gaussian noise (variance 30 on 0-255 pixels), 1/4 of images each, "
        "then erasing (the official code); flip: random flip, then erasing",
        choices=VIEWS,
    )


def training_view(x: torch.Tensor, aug: Augment, view: str) -> torch.Tensor:
    """The classified view of SCN and RUL. `official`: their dataset code's basic augmentation,
    with probability 1/2 a mirror or Gaussian noise (variance 30 on the 0-255 pixels), 1/4 of
    images each (`Augment.flip_or_noise`), then random erasing (their transforms); `flip`:
    `flip_and_erase`."""
    if view == "flip":
        return flip_and_erase(x, aug)
    return aug.random_erase(aug.flip_or_noise(x, GAUSSIAN_STD))
