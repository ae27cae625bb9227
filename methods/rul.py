"""Relative Uncertainty Learning (Zhang et al., NeurIPS 2021).

Two heads on the pooled feature give mu_i and log_var_i (64-d each); the uncertainty is
u_i = mean_d exp(log_var_i,d). Each sample is paired with a random partner j (a permutation of
the batch); w_i = u_i / (u_i + u_j), z_i = w_i * mu_i + (1 - w_i) * mu_j, and
L = 0.5 * CE(fc(z_i), y_i) + 0.5 * CE(fc(z_i), y_j). Test-time prediction is fc(mu_i).

Per-sample signal `uncertainty` = u_i (docs/detectors.md: high reads as uncertain, so suspect;
the measured AUROC says which way it points on a given dataset).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from auditor.options import Options
from methods.base import Augment, Batch, Method, StepOutput, flip_and_erase, register_method


def mix_by_uncertainty(
    mu: torch.Tensor, u: torch.Tensor, partner: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z [N, D], w [N]): z_i = w_i mu_i + (1 - w_i) mu_j, w_i = u_i / (u_i + u_j), j = partner[i]."""
    w = u / (u + u[partner])
    return w.unsqueeze(1) * mu + (1 - w.unsqueeze(1)) * mu[partner], w


def rul_loss(mixed_logits: torch.Tensor, y: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    return 0.5 * F.cross_entropy(mixed_logits, y) + 0.5 * F.cross_entropy(mixed_logits, y[partner])


@register_method
class RUL(Method):
    name = "rul"
    extra_signals = ("uncertainty",)

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        options: Options | None = None,
        *,
        dim: int = 64,
    ) -> None:
        super().__init__(backbone, num_classes, options)
        self.mu = nn.Linear(backbone.out_channels, dim)
        self.log_var = nn.Linear(backbone.out_channels, dim)
        self.fc = nn.Linear(dim, num_classes)

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(pooled), self.log_var(pooled).exp().mean(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.backbone(x).mean(dim=(2, 3))
        return self.fc(self.mu(pooled)), pooled

    def cams(self, x: torch.Tensor) -> None:
        """None: the classifier reads the mu head, not the backbone's channels (even when their
        widths agree, as resnet-small's 64 and mu's 64 do), so W . F(x) is no CAM."""
        return None

    def training_step(self, batch: Batch, aug: Augment) -> StepOutput:
        pooled = self.backbone(flip_and_erase(batch.x, aug)).mean(dim=(2, 3))
        mu, u = self.heads(pooled)
        partner = aug.permutation(len(batch.y), batch.y.device)
        z, _ = mix_by_uncertainty(mu, u, partner)
        loss = rul_loss(self.fc(z), batch.y, partner)
        return StepOutput(loss=loss, logits=self.fc(mu), signals={"uncertainty": u.detach()})
