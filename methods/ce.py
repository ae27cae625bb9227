"""Plain cross-entropy on flipped and erased images: the baseline of the EAC paper's tables
("baselines are also trained with erase and flip for a fair comparison")."""

from __future__ import annotations

import torch

from methods.base import Augment, Method, StepOutput, cross_entropy


class CE(Method):
    name = "ce"

    def training_step(self, x: torch.Tensor, y: torch.Tensor, aug: Augment) -> StepOutput:
        logits, _ = self(aug.random_erase(aug.random_hflip(x)))
        return StepOutput(loss=cross_entropy(logits, y), logits=logits)
