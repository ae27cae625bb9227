"""One optimisation step of the training loop (`auditor.training.engine.train`) and its
bookkeeping: the method's loss, backward, the optimiser step, and every trained sample's signals
and training-view probabilities written into the epoch's row of a preallocated record by
sample index. Nothing here reads a device value on the host (tests/test_host_sync.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from auditor.datasets.pixel_map import Pixels
from auditor.training import distributed
from auditor.training.augment import Augmenter, Normalizer
from auditor.training.signals import COMMON_SIGNALS, common_signals
from methods.base import Batch, Method, StepOutput


def autocast(device: str, enabled: bool) -> torch.autocast:
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def optimisation_step(
    method: Method,
    optimizer: torch.optim.Optimizer,
    trainable: list[torch.nn.Parameter],
    batch: Batch,
    augment: Augmenter,
    amp: bool,
) -> StepOutput:
    """The method's loss (under bf16 autocast when `amp`), backward, gradients averaged over
    torchrun processes (a no-op outside torchrun), the optimiser step and the method's
    after-step hook."""
    with autocast(str(batch.x.device), amp):
        out = method.training_step(batch, augment)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    distributed.average_gradients(trainable)
    optimizer.step()
    method.after_step()
    return out


@dataclass
class Step:
    """One optimisation step and its bookkeeping, for one training. `record[name]` is
    [epochs, N + 1]: column N takes the extra draws of balanced sampling, which train but are
    not recorded, so that no step has to select rows by a mask (a host sync on CUDA)."""

    method: Method
    optimizer: torch.optim.Optimizer
    trainable: list[torch.nn.Parameter]
    augment: Augmenter
    normalize: Normalizer
    pixels: Pixels  # uint8 [N, C, H, W], see `auditor.training.feed.place_pixels`
    given: torch.Tensor  # [N] on the device: signals are read against the given label
    current: torch.Tensor  # [N] on the device: what the method trains on (SCN relabels it)
    record: dict[str, torch.Tensor]
    amp: bool
    relabels: list[torch.Tensor] = field(default_factory=list)  # this epoch's [5, B] per step

    def run(self, epoch: int, raw: torch.Tensor, idx: torch.Tensor, slots: torch.Tensor) -> None:
        """Train on the samples `idx` (on the device), whose uint8 images are `raw` (there too,
        `auditor.training.feed.batches`), and write their signals of `epoch` to columns `slots`
        (= idx, or N for an unrecorded draw)."""
        x = self.normalize(raw).contiguous(memory_format=torch.channels_last)
        batch = Batch(x, self.current[idx], idx, epoch)
        out = optimisation_step(
            self.method, self.optimizer, self.trainable, batch, self.augment, self.amp
        )
        for name, value in (common_signals(out.logits, self.given[idx]) | out.signals).items():
            self.record[name][epoch].index_copy_(0, slots, value.detach().float())
        self.record[PROBS][epoch].index_copy_(0, slots, view_probs(out.logits))
        if out.new_labels is not None:
            changed = (out.new_labels != batch.y).long()
            epoch_col = torch.full_like(idx, epoch + 1)
            self.relabels.append(torch.stack([idx, epoch_col, batch.y, out.new_labels, changed]))
            self.current[idx] = out.new_labels

    def epoch_relabels(self) -> torch.Tensor:
        """[4, E] (index, epoch, from, to) of the labels this epoch's steps changed; clears."""
        steps, self.relabels = self.relabels, []
        if not steps:
            return torch.zeros(4, 0, dtype=torch.long, device=self.current.device)
        table = torch.cat(steps, dim=1)
        return table[:4, table[4].bool()]


PROBS = "probs"  # the record of `Step` that holds each epoch's probabilities, [epochs, N + 1, K]


def view_probs(logits: torch.Tensor) -> torch.Tensor:
    """softmax(logits) as float16, the precision the per-epoch probabilities are kept in."""
    return torch.softmax(logits.detach().float(), dim=1).half()


def new_record(method: Method, epochs: int, n: int, device: str) -> dict[str, torch.Tensor]:
    """`Step.record`, zeros: [epochs, N + 1] per signal (the common ones and the method's own),
    and [epochs, N + 1, K] float16 under PROBS."""
    names = COMMON_SIGNALS + method.extra_signals
    record = {s: torch.zeros(epochs, n + 1, device=device) for s in names}
    classes = method.fc.out_features
    record[PROBS] = torch.zeros(epochs, n + 1, classes, device=device, dtype=torch.float16)
    return record
