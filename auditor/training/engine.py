"""The training loop: one readable loop for every method, in the spirit of torchvision's
`references/classification/train.py`.

Images come from a uint8 tensor already in memory; each step gathers a batch by index,
normalises it on the device and lets the method build its augmented views there. Every
training sample's signals are written each epoch into a preallocated [epochs, N] tensor by
sample index; nothing leaves the device inside the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from auditor.training import distributed
from auditor.training.augment import Augmenter, Normalizer
from auditor.training.signals import COMMON_SIGNALS, common_signals
from methods.base import Batch, Method


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_gamma: float = 0.9  # ExponentialLR, stepped once per epoch (all four FER repositories)
    seed: int = 0
    device: str = "cpu"
    balanced: bool = False  # oversample every class up to the largest (`epoch_order`)
    checkpoint: str | None = None  # saved after every epoch; training resumes from it


def checkpoint_for(config: TrainConfig, suffix: str) -> str | None:
    """The checkpoint path of a derived training (a fold, an AUM threshold run)."""
    return None if config.checkpoint is None else f"{config.checkpoint[: -len('.pt')]}-{suffix}.pt"


@dataclass
class TrainResult:
    signals: dict[str, np.ndarray]  # name -> [epochs, N] float32, by training-sample index
    test_accuracy: list[float]  # per epoch; empty without a test split
    logits: np.ndarray  # [N, K] of the final model on un-augmented training images
    embeddings: np.ndarray  # [N, C] pooled features of the final model
    seconds: float
    images_seen: int = 0
    final_labels: np.ndarray | None = None  # the labels trained on at the end (SCN relabels)
    relabel_events: dict[str, np.ndarray] = field(default_factory=dict)  # index, epoch, from, to


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from auditor.errors import UserError

        raise UserError(
            "--device cuda was asked for but no CUDA device is visible; use --device cpu"
        )
    return name


def batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Split a permutation into ceil(N / batch_size) near-equal batches: every sample is seen
    every epoch and no batch is smaller than the others by more than one (BatchNorm needs > 1)."""
    n_batches = max(1, -(-len(order) // batch_size))
    return list(torch.tensor_split(order, n_batches))


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


@torch.no_grad()
def predict(
    method: Method, pixels: torch.Tensor, normalize: Normalizer, device: str, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, K], pooled features [N, C]) of un-augmented images, in eval mode."""
    method.eval()
    logits, feats = [], []
    for start in range(0, len(pixels), batch_size):
        x = normalize(pixels[start : start + batch_size].to(device, non_blocking=True))
        out, pooled = method(x.contiguous(memory_format=torch.channels_last))
        logits.append(out.float().cpu())
        feats.append(pooled.float().cpu())
    return torch.cat(logits), torch.cat(feats)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean()) if len(labels) else float("nan")


def train(
    method: Method,
    train_pixels: torch.Tensor,
    train_labels: torch.Tensor,
    test_pixels: torch.Tensor | None,
    test_labels: torch.Tensor | None,
    normalize: Normalizer,
    config: TrainConfig,
    progress: Callable[[int, int], None] | None = None,
    final_pass: bool = True,
) -> TrainResult:
    """Train `method` on (train_pixels uint8 [N, C, H, W], train_labels [N]) and record every
    sample's signals every epoch. `progress(samples_in_step, samples_total)` is called per step.
    With `final_pass`, the trained model also scores every un-augmented training image."""
    device = config.device
    rank, world = distributed.rank(), distributed.world_size()
    method.to(device).to(memory_format=torch.channels_last)
    distributed.broadcast_module(method)
    trainable = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma)
    augment = Augmenter(torch.Generator(device=device).manual_seed(config.seed + 7919 * rank))

    n = len(train_labels)
    names = COMMON_SIGNALS + method.extra_signals
    record = {s: torch.zeros(config.epochs, n, device=device) for s in names}
    given = train_labels.to(device)
    current = given.clone()  # what the method trains on; only a relabelling method changes it
    events: list[torch.Tensor] = []
    test_accuracy: list[float] = []
    start = time.perf_counter()
    loop = {"model": method, "optimizer": optimizer, "scheduler": scheduler, "augment": augment.g}
    first_epoch, done = resume_state(
        config.checkpoint, loop, record, current, events, test_accuracy
    )
    if progress is not None and first_epoch:
        progress(first_epoch * epoch_length(train_labels, config.balanced), 0)
    start -= done
    for epoch in range(first_epoch, config.epochs):
        method.train()
        order, recorded = epoch_order(
            train_labels, balanced=config.balanced,
            generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
        )  # fmt: skip
        labels_before, events_before = current.clone(), len(events)
        for global_positions in batches(torch.arange(len(order)), config.batch_size):
            positions = global_positions[rank::world]  # this process's share of the batch
            idx, keep = order[positions], recorded[positions]
            idx_dev = idx.to(device, non_blocking=True)
            x = normalize(train_pixels[idx].to(device, non_blocking=True))
            batch = Batch(
                x.contiguous(memory_format=torch.channels_last), current[idx_dev], idx_dev, epoch
            )
            out = method.training_step(batch, augment)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            distributed.average_gradients(trainable)
            optimizer.step()
            method.after_step()
            # signals are read against the given label, whatever the method trains on; extra
            # draws of balanced sampling train but are not recorded
            rows = keep.to(device) if config.balanced else slice(None)
            for name, value in (common_signals(out.logits, given[idx_dev]) | out.signals).items():
                record[name][epoch].index_copy_(0, idx_dev[rows], value.detach().float()[rows])
            if out.new_labels is not None:
                changed = out.new_labels != batch.y
                epoch_col = torch.full_like(idx_dev, epoch + 1)
                events.append(
                    torch.stack([idx_dev, epoch_col, batch.y, out.new_labels])[:, changed]
                )
                current[idx_dev] = out.new_labels
            if progress is not None:
                progress(len(global_positions), config.epochs * len(order))
        scheduler.step()
        if world > 1:
            merge_processes(epoch, record, current, labels_before, events, events_before, method)
        if rank == 0 and test_pixels is not None and len(test_pixels):
            test_logits, _ = predict(method, test_pixels, normalize, device)
            test_accuracy.append(accuracy(test_logits, test_labels))
        if config.checkpoint is not None and rank == 0:
            save_checkpoint(config.checkpoint, epoch + 1, loop, record, current, events,
                            test_accuracy, time.perf_counter() - start)  # fmt: skip
    seconds = time.perf_counter() - start
    if final_pass and rank == 0:
        logits, embeddings = (t.numpy() for t in predict(method, train_pixels, normalize, device))
    else:
        logits = embeddings = np.zeros((0, 0), dtype=np.float32)
    event_table = torch.cat(events, dim=1).cpu().numpy() if events else np.zeros((4, 0), np.int64)
    event_table = event_table[:, np.lexsort((event_table[0], event_table[1]))]  # by epoch, sample
    return TrainResult(
        signals={k: v.cpu().numpy() for k, v in record.items()},
        test_accuracy=test_accuracy,
        logits=logits,
        embeddings=embeddings,
        seconds=seconds,
        images_seen=config.epochs * n,
        final_labels=current.cpu().numpy(),
        relabel_events=dict(
            zip(("index", "epoch", "from_label", "to_label"), event_table, strict=True)
        ),
    )


def merge_processes(
    epoch: int,
    record: dict[str, torch.Tensor],
    current: torch.Tensor,
    labels_before: torch.Tensor,
    events: list[torch.Tensor],
    events_before: int,
    method: Method,
) -> None:
    """End of an epoch under torchrun: every process gets every sample's signals (each was
    recorded by exactly one process, so a sum gathers them), every relabelling of the epoch,
    and the mean BatchNorm statistics."""
    for values in record.values():
        distributed.sum_(values[epoch])
    current.copy_(labels_before + distributed.sum_(current - labels_before))
    new = events[events_before:]
    mine = torch.cat(new, dim=1).cpu().numpy() if new else np.zeros((4, 0), np.int64)
    del events[events_before:]
    merged = np.concatenate(distributed.gather_objects(mine), axis=1)
    events.append(torch.from_numpy(merged).to(current.device))
    distributed.average_buffers(method)


def save_checkpoint(
    path: str,
    epochs_done: int,
    loop: dict,
    record: dict[str, torch.Tensor],
    current: torch.Tensor,
    events: list[torch.Tensor],
    test_accuracy: list[float],
    seconds: float,
) -> None:
    """Everything the loop needs to go on after `epochs_done` epochs as if never stopped: model,
    optimiser, scheduler, the augmentation and global random states, the signals so far.
    Written to a temporary name and renamed."""
    from auditor.fsutil import atomic_path

    state = {
        "epochs_done": epochs_done,
        "model": loop["model"].state_dict(),
        "optimizer": loop["optimizer"].state_dict(),
        "scheduler": loop["scheduler"].state_dict(),
        "augment_rng": loop["augment"].get_state(),
        "torch_rng": torch.get_rng_state(),
        "record": record,
        "current": current,
        "events": torch.cat(events, dim=1) if events else None,
        "test_accuracy": torch.tensor(test_accuracy, dtype=torch.float64),
        "seconds": seconds,
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(state, tmp)


def resume_state(
    path: str | None,
    loop: dict,
    record: dict[str, torch.Tensor],
    current: torch.Tensor,
    events: list[torch.Tensor],
    test_accuracy: list[float],
) -> tuple[int, float]:
    """Load the checkpoint at `path` into the loop's objects (in place) when it exists; returns
    (epochs already done, seconds they took). Loaded with weights_only=True: tensors only."""
    if path is None or not Path(path).is_file():
        return 0, 0.0
    state = torch.load(path, map_location="cpu", weights_only=True)
    loop["model"].load_state_dict(state["model"])
    loop["optimizer"].load_state_dict(state["optimizer"])
    loop["scheduler"].load_state_dict(state["scheduler"])
    loop["augment"].set_state(state["augment_rng"])
    torch.set_rng_state(state["torch_rng"])
    for name, values in state["record"].items():
        record[name].copy_(values)
    current.copy_(state["current"])
    if state["events"] is not None:
        events.append(state["events"].to(current.device))
    test_accuracy.extend(state["test_accuracy"].tolist())
    return int(state["epochs_done"]), float(state["seconds"])
