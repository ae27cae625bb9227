"""A training's checkpoint: saved after every epoch, read back by `audit run --resume`.

Process 0 writes it under a temporary name renamed into place (`auditor.fsutil.atomic_path`),
so a run killed while saving leaves the previous checkpoint whole, never half of one. It is
read with `torch.load(weights_only=True)` (tensors and plain containers only, no code) and
checked against `auditor.damage.CHECKPOINT` before the loop uses it; one that cannot be read,
is not of that shape or does not fit the run's model is refused as damage
(`auditor.damage.DamagedRunFolder`, exit 2) with what to do: delete it, and that training
starts again from its first epoch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from auditor.damage import brief, checkpoint_damage, load_checkpoint
from auditor.fsutil import atomic_path
from auditor.training import distributed


def save_checkpoint(
    path: str,
    epochs_done: int,
    loop: dict,
    record: dict[str, torch.Tensor],
    current: torch.Tensor,
    events: list[torch.Tensor],
    test_accuracy: list[float],
    seconds: float,
    best_state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Everything the loop needs to go on after `epochs_done` epochs as if never stopped: model,
    optimiser, scheduler, the augmentation and global random states of every process, the
    signals so far. Called by every process; process 0 writes it, to a temporary name renamed
    into place."""
    rng = distributed.gather_objects((loop["augment"].get_state(), torch.get_rng_state()))
    if distributed.rank() != 0:
        return
    state = {
        "epochs_done": epochs_done,
        "model": loop["model"].state_dict(),
        "optimizer": loop["optimizer"].state_dict(),
        "scheduler": loop["scheduler"].state_dict(),
        "augment_rng": [augment_rng for augment_rng, _ in rng],  # by process
        "torch_rng": [torch_rng for _, torch_rng in rng],
        "record": record,
        "current": current,
        "events": torch.cat(events, dim=1) if events else None,
        "test_accuracy": torch.tensor(test_accuracy, dtype=torch.float64),
        "seconds": seconds,
        "best_model": best_state,  # the model after the epoch of best test accuracy, or None
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(state, tmp)


def fit_problem(state: dict, model: nn.Module, groups: list[dict], epochs: int) -> str | None:
    """Why a checkpoint (`state`, as `load_checkpoint` returns it) cannot continue the training
    of `model` with the optimiser's parameter `groups` over at most `epochs` epochs: its epochs
    done out of range, its model's tensors not the model's (names, shapes), its optimiser's
    groups not of the same sizes; None when it can. Read without loading anything, so that
    `audit run --resume` checks every checkpoint before it changes the run folder
    (`auditor.resume.refuse_unfit_checkpoints`) and the loop checks again before it loads one."""
    if not 0 <= state["epochs_done"] <= epochs:
        return f"it says {state['epochs_done']} epochs are done, of {epochs}"
    own, saved = model.state_dict(), state["model"]
    missing, unknown = [k for k in own if k not in saved], [k for k in saved if k not in own]
    if missing or unknown:
        return (
            f"its model lacks {len(missing)} of the model's tensors {missing[:2]} and has "
            f"{len(unknown)} others {unknown[:2]}"
        )
    shapes = [
        f"{k} {tuple(saved[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if saved[k].shape != own[k].shape
    ]
    if shapes:
        return f"{len(shapes)} of its model's tensors have other shapes, e.g. {shapes[0]}"
    saved_groups = [g.get("params") for g in state["optimizer"]["param_groups"]]
    sizes = [len(p) if isinstance(p, list) else None for p in saved_groups]
    wanted = [len(group["params"]) for group in groups]
    if sizes != wanted:
        return f"its optimiser's groups hold {sizes} parameters, the model's {wanted}"
    return None


def resume_state(
    path: str | None,
    loop: dict,
    record: dict[str, torch.Tensor],
    current: torch.Tensor,
    events: list[torch.Tensor],
    test_accuracy: list[float],
) -> tuple[int, float, dict[str, torch.Tensor] | None]:
    """Load the checkpoint at `path` into the loop's objects (in place) when it exists; returns
    (epochs already done, seconds they took, the model state after the epoch of best test
    accuracy or None). Each process takes its own random states (a run resumes with the number
    of processes it started with). A checkpoint that does not fit the loop is refused."""
    if path is None or not (Path(path).exists() or Path(path).is_symlink()):
        return 0, 0.0, None
    state = load_checkpoint(Path(path))
    problem = fit_problem(
        state, loop["model"], loop["optimizer"].param_groups, len(next(iter(record.values())))
    )
    if problem:
        raise checkpoint_damage(Path(path), f"does not fit this run's training ({problem})")
    try:
        loop["model"].load_state_dict(state["model"])
        loop["optimizer"].load_state_dict(state["optimizer"])
        loop["scheduler"].load_state_dict(state["scheduler"])
        loop["augment"].set_state(state["augment_rng"][distributed.rank()])
        torch.set_rng_state(state["torch_rng"][distributed.rank()])
        for name, values in state["record"].items():
            record[name][:, : values.shape[1]].copy_(values)
        current.copy_(state["current"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
        raise checkpoint_damage(
            Path(path), f"does not fit this run's training ({brief(err)})"
        ) from None
    if state["events"] is not None:
        events.append(state["events"].to(current.device))
    test_accuracy.extend(state["test_accuracy"].tolist())
    return int(state["epochs_done"]), float(state["seconds"]), state.get("best_model")
