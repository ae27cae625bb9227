"""The training loop: one readable loop for every method, in the spirit of torchvision's
`references/classification/train.py`. Images come from a uint8 tensor in memory or from the
image cache's file (`auditor.training.feed`: on the GPU when they fit, else gathered on the
host, or read by batch from the file with the next batch read ahead); each step normalises its
batch on the device and lets the method build its augmented views there. Every training
sample's signals are written each epoch into a preallocated [epochs, N] tensor by sample index.
Nothing in the step reads a device value on the host (`Step.run`; tests/test_host_sync.py
checks every method), so on a GPU the host queues steps ahead of the device. On CUDA the
forward pass and the loss run under bf16 autocast (`--amp`), and the backbone can be compiled
(`--compile`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from auditor.datasets.pixel_map import Pixels, take
from auditor.evidence import EVENT_COLUMNS, MethodEvidence
from auditor.training import distributed
from auditor.training.attention import flip_attention
from auditor.training.augment import Augmenter, Normalizer
from auditor.training.checkpoint import resume_state, save_checkpoint
from auditor.training.feed import batches, place_pixels
from auditor.training.length import plateaued
from auditor.training.sampling import batch_bounds, epoch_length, epoch_order
from auditor.training.signals import common_signals
from auditor.training.step import PROBS, Step, autocast, new_record, view_probs
from methods.base import Method


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # with `until_plateau`, the most
    # stop once the held-out accuracy stops rising (`auditor.training.length.plateaued`)
    until_plateau: bool = False
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_gamma: float = 0.9  # ExponentialLR, stepped once per epoch (all four FER repositories)
    seed: int = 0
    device: str = "cpu"
    balanced: bool = False  # oversample every class up to the largest (`epoch_order`)
    checkpoint: str | None = None  # saved after every epoch; training resumes from it
    amp: bool = False  # forward pass and loss under bf16 autocast (`resolve_amp`)
    compile: bool = False  # torch.compile the backbone (`nn.Module.compile`, in place)
    # random horizontal flips in the methods' views, and the flip attention score; off for
    # images whose class a mirror can change (`auditor.symmetry`)
    mirror: bool = True


def checkpoint_for(config: TrainConfig, suffix: str) -> str | None:
    """The checkpoint path of a derived training (a fold, an AUM threshold run)."""
    return None if config.checkpoint is None else f"{config.checkpoint[: -len('.pt')]}-{suffix}.pt"


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from auditor.errors import UserError

        raise UserError(
            "--device cuda was asked for but no CUDA device is visible; use --device cpu"
        )
    return name


def resolve_amp(name: str, device: str) -> bool:
    """`--amp auto` is bf16 autocast on a CUDA device that supports bf16, off on the CPU (where
    bf16 matmuls are rarely faster); `bf16` asks for it anywhere; `off` never."""
    if name == "auto":
        return device == "cuda" and torch.cuda.is_bf16_supported()
    return name == "bf16"


@torch.no_grad()
def predict(
    method: Method,
    pixels: Pixels,
    normalize: Normalizer,
    device: str,
    batch_size: int = 512,
    amp: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, K], pooled features [N, C]) of un-augmented images, in eval mode, as float32."""
    method.eval()
    logits, feats = [], []
    for start in range(0, len(pixels), batch_size):
        x = normalize(pixels[start : start + batch_size].to(device, non_blocking=True))
        with autocast(device, amp):
            out, pooled = method(x.contiguous(memory_format=torch.channels_last))
        logits.append(out.float().cpu())
        feats.append(pooled.float().cpu())
    return torch.cat(logits), torch.cat(feats)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean()) if len(labels) else float("nan")


def train(
    method: Method,
    train_pixels: Pixels,
    train_labels: torch.Tensor,
    test_pixels: Pixels | None,
    test_labels: torch.Tensor | None,
    normalize: Normalizer,
    config: TrainConfig,
    progress: Callable[[int, int], None] | None = None,
    final_pass: bool = True,
    on_epoch: Callable[[int, Method, dict[str, torch.Tensor]], None] | None = None,
    held_out: np.ndarray | None = None,
) -> MethodEvidence:
    """Train `method` on (train_pixels uint8 [N, C, H, W], train_labels [N]) and record every
    sample's signals every epoch. With `held_out` (indices of a validation split, for a dataset
    without a test split: `test_pixels` is then None), those samples are not trained on: after
    every epoch the model in eval mode classifies them, un-augmented, which gives the epoch's
    accuracy (against their given labels) and their common signals (`COMMON_SIGNALS`) of that
    epoch; a method's own signals, which only its training step yields, are set for them to
    the median over the trained samples of the same epoch (neither suspect nor clean). Every
    output stays [N], by sample index. `progress(samples_in_step, samples_total)` is called per
    step; `on_epoch(epoch, method, signals)` after each epoch's test accuracy, with every signal so
    far ([epoch + 1, N] each; process 0; for measurements such as bench/memorisation.py, which
    read the model at every epoch; it must not change the model, and its draws from the global
    random state are undone). With `final_pass`, the
    trained model also scores every un-augmented training image: probabilities, pooled
    features and flip attention (`auditor.training.attention`; not with `config.mirror` off)."""
    if held_out is not None and test_pixels is not None:
        raise ValueError("a held-out split replaces the test split: give one of them")
    device = config.device
    rank, world = distributed.rank(), distributed.world_size()
    method.to(device).to(memory_format=torch.channels_last)
    distributed.broadcast_module(method)
    if config.compile:
        method.backbone.compile()  # in place: parameter names and checkpoints are unchanged
    trainable = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        method.param_groups(config.lr), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma)
    generator = torch.Generator(device=device).manual_seed(config.seed + 7919 * rank)
    augment = Augmenter(generator, normalizer=normalize, mirror=config.mirror)

    n = len(train_labels)
    trained = torch.arange(n)
    if held_out is not None:
        trained = torch.from_numpy(np.setdiff1d(np.arange(n), held_out))
        test_pixels, test_labels = take(train_pixels, held_out), train_labels[held_out]
    trained_labels = train_labels[trained]
    given = train_labels.to(device)
    step = Step(
        method,
        optimizer,
        trainable,
        augment,
        normalize,
        place_pixels(train_pixels, device),
        given,
        given.clone(),
        new_record(method, config.epochs, n, device),
        config.amp,
    )
    events: list[torch.Tensor] = []
    test_accuracy: list[float] = []
    start = time.perf_counter()
    loop = {"model": method, "optimizer": optimizer, "scheduler": scheduler, "augment": augment.g}
    first_epoch, done, best_state = resume_state(
        config.checkpoint, loop, step.record, step.current, events, test_accuracy
    )
    if progress is not None and first_epoch:
        progress(first_epoch * epoch_length(trained_labels, config.balanced), 0)
    start -= done
    trained_epochs = first_epoch
    for epoch in range(first_epoch, config.epochs):
        if config.until_plateau and stop_now(test_accuracy):
            break
        method.train()
        order, recorded = epoch_order(
            trained_labels,
            balanced=config.balanced,
            generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
        )
        order = trained[order]
        order_dev = order.to(device)
        slots_dev = torch.where(recorded, order, n).to(device)
        labels_before = step.current.clone()
        bounds = batch_bounds(len(order), config.batch_size)
        shares = [slice(first + rank, stop, world) for first, stop in bounds]  # this process's
        images = batches(step.pixels, [order[s] for s in shares], [order_dev[s] for s in shares])
        for (first, stop), share, raw in zip(bounds, shares, images, strict=True):
            step.run(epoch, raw, order_dev[share], slots_dev[share])
            if progress is not None:
                progress(stop - first, config.epochs * len(order))
        scheduler.step()
        relabels = step.epoch_relabels()
        if world > 1:
            relabels = merge_processes(
                epoch, step.record, step.current, labels_before, relabels, method
            )
        events.append(relabels)
        if rank == 0 and test_pixels is not None and len(test_pixels):
            test_logits, _ = predict(method, test_pixels, normalize, device, amp=config.amp)
            test_accuracy.append(accuracy(test_logits, test_labels))
            if held_out is not None:
                record_held_out(step.record, epoch, held_out, trained, test_logits, test_labels)
            if test_accuracy[-1] > max(test_accuracy[:-1], default=-1.0):
                best_state = {k: v.detach().clone() for k, v in method.state_dict().items()}
        if on_epoch is not None and rank == 0:
            cuda = torch.device(device).type == "cuda"
            with torch.random.fork_rng(devices=[torch.device(device).index or 0] if cuda else []):
                # the hook's random draws (a seeded PCA, say) leave training's unchanged
                on_epoch(
                    epoch,
                    method,
                    {k: v[: epoch + 1, :n] for k, v in step.record.items() if k != PROBS},
                )
        if config.checkpoint is not None:
            save_checkpoint(
                config.checkpoint,
                epoch + 1,
                loop,
                step.record,
                step.current,
                events,
                test_accuracy,
                time.perf_counter() - start,
                best_state,
            )
        trained_epochs = epoch + 1
    best = {}
    if final_pass and rank == 0:
        logits, pooled = predict(method, train_pixels, normalize, device, amp=config.amp)
        probs, embeddings = torch.softmax(logits, dim=1).numpy(), pooled.numpy()
        attention = None
        if config.mirror:
            attention = flip_attention(
                method, train_pixels, train_labels, normalize, device, amp=config.amp
            )
        if test_accuracy:
            best = best_epoch_outputs(
                method,
                best_state,
                test_accuracy,
                train_pixels,
                normalize,
                device,
                config.amp,
                probs,
            )
    else:
        probs = embeddings = np.zeros((0, 0), dtype=np.float32)
        attention = None
    event_table = torch.cat(events, dim=1).cpu().numpy() if events else np.zeros((4, 0), np.int64)
    event_table = event_table[:, np.lexsort((event_table[0], event_table[1]))]  # by epoch, sample
    relabels = type(method).relabels
    return MethodEvidence(
        name=method.name,
        signals={
            k: v[:trained_epochs, :n].cpu().numpy() for k, v in step.record.items() if k != PROBS
        },
        final_probs=probs,
        embeddings=embeddings,
        final_labels=step.current.cpu().numpy() if relabels else None,
        relabel_events=dict(zip(EVENT_COLUMNS, event_table, strict=True)) if relabels else {},
        flip_attention=attention,
        epoch_probs=step.record[PROBS][:trained_epochs, :n].cpu().numpy(),
        epoch_accuracy=test_accuracy,
        **best,
    )


def stop_now(test_accuracy: list[float]) -> bool:
    """`plateaued` on process 0's held-out accuracy (the only one that measures it), the same
    answer in every process."""
    return bool(distributed.broadcast_object(plateaued(test_accuracy)))


def record_held_out(
    record: dict[str, torch.Tensor],
    epoch: int,
    held_out: np.ndarray,
    trained: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
) -> None:
    """Write the held-out samples' signals of `epoch` into `record` ([epochs, N + 1] each):
    `common_signals` of their eval-mode `logits` against their given `labels`, and for every
    other signal (a method's own) the median of the trained samples' values that epoch; their
    probabilities are the eval-mode model's."""
    common = common_signals(logits, labels) | {PROBS: view_probs(logits)}
    for name, values in record.items():
        row = values[epoch]
        value = (
            common[name]
            if name in common
            else row[trained.to(row.device)].median().expand(len(held_out))
        )
        row[torch.from_numpy(held_out).to(row.device)] = value.to(row.device, row.dtype)


def best_epoch_outputs(
    method: Method,
    best_state: dict[str, torch.Tensor] | None,
    test_accuracy: list[float],
    pixels: Pixels,
    normalize: Normalizer,
    device: str,
    amp: bool,
    final_probs: np.ndarray,
) -> dict:
    """`best_epoch` and `best_probs` of `MethodEvidence`: the un-augmented training images
    through the model as it was after the epoch of best test accuracy (the first, on ties),
    `final_probs` (the final model's) when that epoch is the last. `method` is left with its
    final weights."""
    best_epoch = int(np.argmax(test_accuracy)) + 1
    if best_epoch == len(test_accuracy) or best_state is None:
        probs = final_probs
    else:
        final_state = {k: v.detach().clone() for k, v in method.state_dict().items()}
        method.load_state_dict(best_state)
        logits, _ = predict(method, pixels, normalize, device, amp=amp)
        method.load_state_dict(final_state)
        probs = torch.softmax(logits, dim=1).numpy()
    return {"best_epoch": best_epoch, "best_probs": probs}


def merge_processes(
    epoch: int,
    record: dict[str, torch.Tensor],
    current: torch.Tensor,
    labels_before: torch.Tensor,
    relabels: torch.Tensor,
    method: Method,
) -> torch.Tensor:
    """End of an epoch under torchrun: every process gets every sample's signals (each was
    recorded by exactly one process, so a sum gathers them; the unrecorded column is summed
    too and means nothing), every relabelling of the epoch (returned, [4, E]), and the mean
    BatchNorm statistics."""
    for values in record.values():
        distributed.sum_(values[epoch])
    current.copy_(labels_before + distributed.sum_(current - labels_before))
    mine = relabels.cpu().numpy()
    merged = np.concatenate(distributed.gather_objects(mine), axis=1)
    distributed.average_buffers(method)
    return torch.from_numpy(merged).to(current.device)
