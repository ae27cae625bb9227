"""Plain cross-entropy on flipped and erased images: the baseline of the EAC paper's tables
("baselines are also trained with erase and flip for a fair comparison")."""

from __future__ import annotations

from methods.base import (
    Augment,
    Batch,
    Method,
    StepOutput,
    cross_entropy,
    flip_and_erase,
    register_method,
)


@register_method
class CE(Method):
    name = "ce"

    def training_step(self, batch: Batch, aug: Augment) -> StepOutput:
        logits, _ = self(flip_and_erase(batch.x, aug))
        return StepOutput(loss=cross_entropy(logits, batch.y), logits=logits)
