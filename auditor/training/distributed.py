"""Data-parallel training across processes started by torchrun (gloo on the CPU, NCCL on CUDA).

Each process trains on an interleaved share of every global batch; after backward the gradients
are averaged over processes with one all-reduce, which is what DistributedDataParallel does. It
is done explicitly here because a method runs several forward passes per step (EAC's two views,
GSMC's teacher), which DDP's module wrapper does not follow. Floating-point buffers (BatchNorm's
running statistics) are averaged at the end of every epoch. Each process records the signals of
the samples it trained on; a sum over processes at the end of the epoch gives every sample its
single record. Process 0 alone evaluates, checkpoints and writes the run folder.

Outside torchrun (no WORLD_SIZE > 1 in the environment) every function here is a no-op.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def init_from_env(device: str) -> bool:
    """Join the process group torchrun describes in the environment; True when one was joined."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or active():
        return active()
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def average_gradients(parameters: list[nn.Parameter]) -> None:
    """grad <- mean over processes of grad, in one flattened all-reduce."""
    if not active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def average_buffers(module: nn.Module) -> None:
    """Floating-point buffers (BatchNorm running mean / var) <- their mean over processes."""
    if not active():
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer /= world_size()


def broadcast_module(module: nn.Module) -> None:
    """Every parameter and buffer <- process 0's, so all processes start identical."""
    if not active():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def sum_(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over processes."""
    if active():
        dist.all_reduce(tensor)
    return tensor


def gather_objects(value: object) -> list[object]:
    """[value of process 0, value of process 1, ...] (just [value] outside torchrun)."""
    if not active():
        return [value]
    out: list[object] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast_object(value: object) -> object:
    """Process 0's value, on every process."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
