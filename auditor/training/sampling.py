"""The order of an epoch's samples and its batches (`auditor.training.engine.train`): every
sample once per epoch, shuffled by a seeded generator, with class-balanced top-ups when asked
for, in near-equal batches."""

from __future__ import annotations

import torch


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """[start, stop) of ceil(n / batch_size) near-equal batches over n positions: every sample
    is seen every epoch and no batch is smaller than another by more than one (BatchNorm needs
    more than one sample)."""
    n_batches = max(1, -(-n // batch_size))
    size, larger = divmod(n, n_batches)  # the first `larger` batches take one more
    starts = [i * size + min(i, larger) for i in range(n_batches + 1)]
    return list(zip(starts[:-1], starts[1:], strict=True))


def epoch_order(
    labels: torch.Tensor, *, balanced: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sample order, recorded mask) of one epoch. Every sample comes exactly once with
    recorded = True. With `balanced` (class-balanced sampling, as AffectNet users train), each
    class is topped up with extra draws, with replacement, of its own samples until it has as
    many as the largest class; those extra draws train but do not overwrite the signals, so
    every sample's per-epoch signal stays its single recorded pass. (torchsampler's
    ImbalancedDatasetSampler draws the whole epoch with replacement instead, which would leave
    some samples without a signal.)"""
    n = len(labels)
    order = torch.arange(n)
    if balanced:
        counts = torch.bincount(labels)
        extra = []
        for c in torch.nonzero(counts).squeeze(1).tolist():
            members = torch.nonzero(labels == c).squeeze(1)
            need = int(counts.max()) - len(members)
            if need > 0:
                extra.append(members[torch.randint(len(members), (need,), generator=generator)])
        order = torch.cat([order, *extra])
    recorded = torch.arange(len(order)) < n
    shuffle = torch.randperm(len(order), generator=generator)
    return order[shuffle], recorded[shuffle]


def epoch_length(labels: torch.Tensor, balanced: bool) -> int:
    """Samples drawn per epoch by `epoch_order`."""
    if not balanced:
        return len(labels)
    counts = torch.bincount(labels)
    return int((counts > 0).sum() * counts.max())
