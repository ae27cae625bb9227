"""Erasing Attention Consistency (Zhang et al., ECCV 2022).

Views: x1 = erase(x), x2 = hflip(x1) -- the same erasure mirrored (the paper, `erasure="same"`).
The official code, when it trains on a noisy label file, erases the two views independently:
x2 = erase'(hflip(x)) (`erasure="independent"`). x1 itself is not flipped at random: the
official noisy-label training sees the mirror only through x2 (the "imbalanced framework"; the
paper's ablation without it drops from 84.42 to 78.29 at 30% noise). `flip=True` flips x first
at random, as this tool did before (the generic training view of the other methods). The
official dataset code also adds Gaussian noise of variance 30 on the 0-255 pixels to x1 with
probability 0.5 (`gaussian_noise=True`; off by default, as the paper does not mention it); the
noise is drawn before erasing, so x2 shares it.

Only x1 is classified ("imbalanced framework"):

    L = CE(fc(GAP(F(x1))), y) + lambda * mean_{n,k,h,w} (CAM(x1) - hflip(CAM(x2)))^2

with CAM = W . F (`methods.cam`). The fc weight in the CAM term is detached, as the paper's
Fig. 2 (dotted lines: no gradient) and the code do. The paper writes the consistency as an L2
norm per class map; the code, which we follow, uses the mean squared difference. The two views
pass through the backbone separately, as in the code (BatchNorm statistics per view).
The CAMs and their squared difference are computed in float32 even under bf16 autocast
(`methods.cam.float32_cams`): a small difference of two large maps loses its meaning in bf16.
lambda = 5 (ResNet-18, noisy RAF-DB).

Per-sample signal `flip_cam`: mean_{k,h,w} (CAM(x1) - hflip(CAM(x2)))^2 (higher = more suspect).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from auditor.options import Options, option
from methods.base import (
    GAUSSIAN_STD,
    Augment,
    Batch,
    Method,
    StepOutput,
    cross_entropy,
    register_method,
)
from methods.cam import flip_cam_disagreement, float32_cams

ERASURES = ("same", "independent")


@dataclass(frozen=True)
class EACOptions(Options):
    # the paper uses 3 to 10; far beyond, the consistency term swamps the labels' loss, and past
    # float32's range it is infinite and the weights turn NaN
    lam: float = option(
        5.0, "weight of the consistency loss", name="lambda", at_least=0, at_most=100
    )
    erasure: str = option(
        "same",
        "same: x2 = flip(erase(x)) (paper); independent: erase each view (official code)",
        choices=ERASURES,
    )
    flip: bool = option(
        False, "flip x1 at random before erasing (the official noisy-label training does not)"
    )
    gaussian_noise: bool = option(
        False, "add Gaussian noise (variance 30 on 0-255 pixels, p = 0.5) to x1 (official code)"
    )


def eac_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    fmap1: torch.Tensor,
    fmap2: torch.Tensor,
    fc_weight: torch.Tensor,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (total loss, per-sample flip-CAM disagreement [N], float32). `fmap2` is the
    feature map of the flipped view; `logits` are those of the first view only. The CAM term is
    computed in float32 with autocast off."""
    w = fc_weight.detach()
    per_sample = flip_cam_disagreement(float32_cams(fmap1, w), float32_cams(fmap2, w))
    return cross_entropy(logits, y) + lam * per_sample.mean(), per_sample


@register_method
class EAC(Method):
    name = "eac"
    options_class = EACOptions
    extra_signals = ("flip_cam",)
    needs_mirror_symmetry = True  # CAM(x) and hflip(CAM(hflip x)) must agree
    options: EACOptions

    def training_step(self, batch: Batch, aug: Augment) -> StepOutput:
        base = aug.random_hflip(batch.x) if self.options.flip else batch.x
        if self.options.gaussian_noise:
            base = aug.pixel_noise(base, std=GAUSSIAN_STD, p=0.5)
        x1 = aug.random_erase(base)
        same = self.options.erasure == "same"
        x2 = x1.flip(-1) if same else aug.random_erase(base.flip(-1))
        fmap1 = self.backbone(x1)
        fmap2 = self.backbone(x2)
        logits = self.fc(fmap1.mean(dim=(2, 3)))
        loss, flip_cam = eac_loss(logits, batch.y, fmap1, fmap2, self.fc.weight, self.options.lam)
        return StepOutput(loss=loss, logits=logits, signals={"flip_cam": flip_cam.detach()})
