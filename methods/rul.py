"""Relative Uncertainty Learning (Zhang et al., NeurIPS 2021).

Two heads give mu_i and log_var_i (64-d each); the uncertainty is u_i = mean_d exp(log_var_i,d).
The official heads (`heads="official"`, default) read the last feature map: each is
BatchNorm2d(C, affine=False) -> Dropout(0.4) -> flatten of the 7 x 7 map -> Linear(49 C -> 64)
-> BatchNorm1d(64), BatchNorms with eps 2e-5 as in the official code; the map is adaptively
average-pooled to 7 x 7 first, which is the identity at the official 224 px with ResNet-18 and
what makes the head's size independent of the image size elsewhere (the official code works at
224 px only). `heads="linear"` is this tool's earlier head: one Linear on the pooled feature.
The fc trains at `fc_lr` (10) times the learning rate of the backbone and the heads, as the
official code's optimiser groups do (2e-3 vs 2e-4: its heads belong to the feature module). Each
sample is paired with a random partner j (a permutation of the batch); w_i = u_i / (u_i + u_j),
z_i = w_i * mu_i + (1 - w_i) * mu_j, and L = 0.5 * CE(fc(z_i), y_i) + 0.5 * CE(fc(z_i), y_j).
Test-time prediction is fc(mu_i).

Training view (`view="official"`, default): as SCN's code, whose dataset code RUL's copies,
a mirror or Gaussian noise (variance 30 on 0-255 pixels) on 1/4 of images each, then random
erasing (`methods.base.training_view`); `view="flip"`: random flip, then erasing. The official
optimiser: Adam, backbone and heads 2e-4 (`--preset paper`'s --lr), fc 2e-3, weight decay
1e-4, ExponentialLR(0.9), batch 64, 60 epochs.

Per-sample signal `uncertainty` = u_i (docs/detectors.md: high reads as uncertain, so suspect;
the measured AUROC says which way it points on a given dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from auditor.options import Options, option
from methods.base import (
    Augment,
    Batch,
    Method,
    StepOutput,
    register_method,
    training_view,
    view_option,
)
from methods.cam import class_activation_maps

HEADS = ("official", "linear")


@dataclass(frozen=True)
class RULOptions(Options):
    heads: str = option(
        "official",
        "official: BatchNorm2d -> Dropout(0.4) -> flatten of the 7x7 map -> Linear -> "
        "BatchNorm1d (official code); linear: a Linear on the pooled feature",
        choices=HEADS,
    )
    # a multiple of --lr (itself at most 1): the official code's 10, with room to spare
    fc_lr: float = option(
        10.0,
        "learning rate of the fc, as a multiple of --lr (official code: 10)",
        above=0,
        at_most=100,
    )
    view: str = view_option()


def official_head(channels: int, dim: int, side: int = 7) -> nn.Sequential:
    """The official RUL head on a feature map [N, C, h, w] -> [N, dim]."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(side),
        nn.BatchNorm2d(channels, eps=2e-5, affine=False),
        nn.Dropout(0.4),
        nn.Flatten(),
        nn.Linear(channels * side * side, dim),
        nn.BatchNorm1d(dim, eps=2e-5),
    )


def mix_by_uncertainty(
    mu: torch.Tensor, u: torch.Tensor, partner: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z [N, D], w [N]): z_i = w_i mu_i + (1 - w_i) mu_j, w_i = u_i / (u_i + u_j),
    j = partner[i]."""
    w = u / (u + u[partner])
    return w.unsqueeze(1) * mu + (1 - w.unsqueeze(1)) * mu[partner], w


def rul_loss(mixed_logits: torch.Tensor, y: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    return 0.5 * F.cross_entropy(mixed_logits, y) + 0.5 * F.cross_entropy(mixed_logits, y[partner])


@register_method
class RUL(Method):
    name = "rul"
    options_class = RULOptions
    extra_signals = ("uncertainty",)
    options: RULOptions

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        options: RULOptions | None = None,
        *,
        dim: int = 64,
    ) -> None:
        super().__init__(backbone, num_classes, options)
        channels = backbone.out_channels
        official = self.options.heads == "official"
        self.mu = official_head(channels, dim) if official else nn.Linear(channels, dim)
        self.log_var = official_head(channels, dim) if official else nn.Linear(channels, dim)
        self.fc = nn.Linear(dim, num_classes)

    def heads(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu [N, dim], u [N]) from the feature map [N, C, h, w]."""
        x = fmap if self.options.heads == "official" else fmap.mean(dim=(2, 3))
        return self.mu(x), self.log_var(x).exp().mean(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.backbone(x)
        mu, _ = self.heads(fmap)
        return self.fc(mu), fmap.mean(dim=(2, 3))

    def param_groups(self, lr: float) -> list[dict]:
        """The backbone and the heads at `lr`, the fc at `fc_lr * lr` (official code)."""
        fc = {id(p) for p in self.fc.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in fc]
        fc_params = [p for p in self.fc.parameters() if p.requires_grad]
        return [{"params": rest, "lr": lr}, {"params": fc_params, "lr": lr * self.options.fc_lr}]

    def cams(self, fmap: torch.Tensor) -> torch.Tensor:
        """RUL's class activation maps [N, K, h, w]: the spatial contributions to its logits.
        In eval mode the path map -> mu -> fc(mu) is affine (dropout is the identity, the
        BatchNorms use their running statistics), so z_k = sum_{c,h,w} A[k,c,h,w] n[c,h,w] + b_k:
        CAM_k[h, w] = sum_c A[k,c,h,w] n[c,h,w], summing to the logit minus its constant.
        Official heads: n is the map pooled to 7 x 7 and scaled by BatchNorm2d's 1 / sqrt(var +
        eps) (its mean shift is the same for every image, so it stays in the constant and n
        stays linear in the features), A = (W_fc diag(gamma / sqrt(var + eps)) W_lin) reshaped
        [K, C, 7, 7] (BatchNorm1d's scale). A differs per position, so even a mirror-consistent
        backbone has a flip disagreement here: RUL's flip attention mixes the head's own
        asymmetry with the attention's. Linear heads: n = F / (h w), A = W_fc W_mu at every
        position. (W . F(x), the plain CAM, would mean nothing here: fc reads mu, not the
        backbone's channels.) The maps sum to the logit, where the other methods' average to
        it. Reads the running statistics, whatever the mode."""
        weight = self.fc.weight
        if self.options.heads == "linear":
            area = fmap.shape[-2] * fmap.shape[-1]
            return class_activation_maps(fmap / area, weight @ self.mu.weight)
        pool, norm2d, _dropout, _flatten, linear, norm1d = self.mu
        n = pool(fmap) / torch.sqrt(norm2d.running_var + norm2d.eps).view(1, -1, 1, 1)
        scale = norm1d.weight / torch.sqrt(norm1d.running_var + norm1d.eps)
        a = ((weight * scale) @ linear.weight).view(len(weight), *n.shape[1:])
        return torch.einsum("nchw,kchw->nkhw", n, a)

    def training_step(self, batch: Batch, aug: Augment) -> StepOutput:
        mu, u = self.heads(self.backbone(training_view(batch.x, aug, self.options.view)))
        partner = aug.permutation(len(batch.y), batch.y.device)
        z, _ = mix_by_uncertainty(mu, u, partner)
        loss = rul_loss(self.fc(z), batch.y, partner)
        return StepOutput(loss=loss, logits=self.fc(mu), signals={"uncertainty": u.detach()})
