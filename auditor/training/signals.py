"""Per-sample training signals every method yields, computed from the logits of the view that
received the classification loss and the given labels."""

from __future__ import annotations

import torch
from torch.nn import functional as F

COMMON_SIGNALS = ("loss", "margin", "p_given", "correct")


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y - max_{k != y} z_k (Pleiss et al. 2020, the per-epoch term of AUM)."""
    given = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, y.view(-1, 1), float("-inf"))
    return given - others.max(dim=1).values


def common_signals(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """loss = -log p(y|x); margin = logit margin; p_given = p(y|x); correct = argmax == y."""
    logits = logits.detach().float()
    log_p = F.log_softmax(logits, dim=1)
    log_p_given = log_p.gather(1, y.view(-1, 1)).squeeze(1)
    return {
        "loss": -log_p_given,
        "margin": logit_margin(logits, y),
        "p_given": log_p_given.exp(),
        "correct": (logits.argmax(dim=1) == y).float(),
    }
