"""Loading pre-trained backbone weights from a user's checkpoint, strictly and safely.

Checkpoints are read with `torch.load(..., weights_only=True)`: a pickle that would construct
arbitrary Python objects (and so could run code) is refused. The common layouts are mapped:
a raw state dict, `{'state_dict': ...}` / `{'model': ...}` / `{'model_state_dict': ...}` (the
MS-Celeb ResNet-18 file shared as `resnet18_msceleb.pth` is `{'state_dict': ...}` with
torchvision's names), and keys prefixed by `module.` (DataParallel), `features.`, `feat_net.`,
`backbone.` or `base.`. A key maps to the first of (itself, itself without one or more of those
prefixes) that names a backbone tensor of the same shape (and floating point where it is).
Loading is refused unless every backbone tensor is matched, so a checkpoint can never silently
load nothing (the bug users of SCN's official loader keep reporting); `allow_partial` accepts
fewer, never none.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from auditor.checkpoint_files import declared_size_problem, first_tensor_problem
from auditor.damage import brief
from auditor.errors import UserError

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
PREFIXES = ("module.", "features.", "feat_net.", "backbone.", "base.")
MAX_WRAPPERS = 8  # {'state_dict': {'model': ...}} nesting followed at most this deep


@dataclass
class WeightsReport:
    path: str
    matched: int
    expected: int
    missing: list[str] = field(default_factory=list)  # backbone tensors the file did not provide
    mismatched: list[str] = field(default_factory=list)  # same name, other shape
    unused: list[str] = field(default_factory=list)  # file tensors that fit nothing (e.g. fc)

    def summary(self) -> str:
        line = f"weights {self.path}: matched {self.matched}/{self.expected} backbone tensors"
        if self.unused:
            more = "..." if len(self.unused) > 4 else ""
            line += f"; ignored {len(self.unused)} ({', '.join(self.unused[:4])}{more})"
        return line


def check_declared_size(path: Path) -> None:
    """Refuse, before anything is read into memory, a zip checkpoint whose entries declare far
    more bytes than the file holds (`auditor.checkpoint_files.declared_size_problem`, the one
    check for `--weights` and a run's checkpoints alike)."""
    problem = declared_size_problem(path)
    if problem:
        raise UserError(f"--weights {path}: refused, it {problem}")


def unwrap(obj: object, path: Path) -> object:
    """The state dict inside `obj`: follow the wrapper keys (`WRAPPER_KEYS`) at most
    `MAX_WRAPPERS` deep, refusing a mapping that contains itself."""
    seen = set()
    for _ in range(MAX_WRAPPERS + 1):
        if not isinstance(obj, dict):
            return obj
        if id(obj) in seen:
            raise UserError(f"--weights {path}: refused, its mapping contains itself")
        seen.add(id(obj))
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            return obj
        obj = inner
    raise UserError(f"--weights {path}: refused, wrapped more than {MAX_WRAPPERS} levels deep")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The flat name -> tensor dict inside a checkpoint file (weights_only), after
    `check_declared_size`; the wrappers are followed by `unwrap`; a tensor that no state dict
    holds (`auditor.checkpoint_files.tensor_problem`: sparse, meta, complex, a stride-0 view) or
    that holds NaN or infinity (`check_finite`) is refused."""
    if not Path(path).is_file():
        raise UserError(f"--weights {path}: no such file")
    check_declared_size(Path(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(
            f"--weights {path}: refused, the file holds Python objects beyond tensors and plain "
            f"containers, which could run code when loaded ({str(err).splitlines()[0]})"
        ) from None
    except Exception as err:  # whatever torch.load raises on a file torch.save did not write
        raise UserError(
            f"--weights {path}: not a PyTorch checkpoint ({type(err).__name__}: {brief(err)})"
        ) from None
    obj = unwrap(obj, path)
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"--weights {path}: found no state dict (a mapping of names to tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    problem = first_tensor_problem(tensors)
    if problem:
        raise UserError(f"--weights {path}: refused, it {problem}; give another checkpoint")
    check_finite(tensors, path)
    return tensors


def check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a checkpoint holding NaN or infinity (one saved from a diverged training): every
    model built from it would train on NaN from the first step. Names the first such tensor."""
    for key, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise UserError(
                    f"--weights {path}: tensor {key!r} holds {bad} NaN or infinite values of "
                    f"{tensor.numel()}; a checkpoint of a diverged training cannot initialise a "
                    "model: give another checkpoint"
                )


def candidate_names(key: str) -> list[str]:
    names, current = [key], key
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if current.startswith(prefix):
                current = current[len(prefix) :]
                names.append(current)
                stripped = True
    return names


def fits_tensor(tensor: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether `tensor` may fill the backbone's `target`: the same shape, and real floating
    point where the target is (only floating tensors load into weights; an integer buffer,
    BatchNorm's step counter, takes an integer)."""
    return tensor.shape == target.shape and tensor.is_floating_point() == target.is_floating_point()


def described(tensor: torch.Tensor) -> str:
    return f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"


def map_state_dict(
    checkpoint: dict[str, torch.Tensor], backbone: nn.Module
) -> tuple[dict[str, torch.Tensor], WeightsReport]:
    target = backbone.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    mismatched, unused = [], []
    for key, tensor in checkpoint.items():
        names = [n for n in candidate_names(key) if n in target]
        fits = [n for n in names if fits_tensor(tensor, target[n])]
        if fits and fits[0] not in mapped:
            mapped[fits[0]] = tensor
        elif names:
            mismatched.append(f"{names[0]} {described(tensor)} vs {described(target[names[0]])}")
        else:
            unused.append(key)
    required = [
        k for k in target if not k.endswith("num_batches_tracked")
    ]  # a counter, not a weight
    report = WeightsReport(
        path="",
        matched=sum(k in mapped for k in required),
        expected=len(required),
        missing=[k for k in required if k not in mapped],
        mismatched=mismatched,
        unused=unused,
    )
    return mapped, report


def imagenet_state_dict(backbone_name: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for a backbone (downloads them: needs a network)."""
    from torchvision.models import get_weight

    from methods.backbones import IMAGENET_WEIGHTS

    if backbone_name not in IMAGENET_WEIGHTS:
        raise UserError(
            f"--weights imagenet: torchvision has no ImageNet weights for {backbone_name}"
        )
    try:
        return get_weight(IMAGENET_WEIGHTS[backbone_name]).get_state_dict(progress=False)
    except Exception as err:  # noqa: BLE001 - offline or blocked: say so
        raise UserError(
            f"--weights imagenet: download failed ({err}); pass a local checkpoint path"
        ) from None


def mismatches(report: WeightsReport) -> str:
    """The first few names matched with another shape or kind of number, for a refusal."""
    return f"shape mismatches: {', '.join(report.mismatched[:3])}" if report.mismatched else ""


def load_backbone_weights(
    source: str, backbone: nn.Module, backbone_name: str, *, allow_partial: bool = False
) -> tuple[dict[str, torch.Tensor], WeightsReport]:
    """The backbone's state dict filled from `source` (a checkpoint path, or `imagenet`), and what
    matched. Unmatched tensors keep the backbone's own values, and only with `allow_partial`."""
    checkpoint = (
        imagenet_state_dict(backbone_name)
        if source == "imagenet"
        else read_checkpoint(Path(source))
    )
    mapped, report = map_state_dict(checkpoint, backbone)
    report.path = path = source
    if report.matched == 0:  # what --allow-partial-weights never means
        raise UserError(
            f"--weights {path}: none of its tensors fits one of the {report.expected} of the "
            f"{backbone_name} backbone ({mismatches(report) or 'no name matches'}); "
            "--allow-partial-weights loads what matches, and nothing does: give a checkpoint of "
            "this backbone, or name its backbone with --backbone"
        )
    if report.missing and not allow_partial:
        detail = f"; {mismatches(report)}" if report.mismatched else ""
        raise UserError(
            f"--weights {path}: matched only {report.matched} of {report.expected} backbone "
            f"tensors (missing e.g. {', '.join(report.missing[:3])}{detail}). Is it a checkpoint "
            "of this backbone (--backbone)? Pass --allow-partial-weights to load what matches "
            "anyway."
        )
    return backbone.state_dict() | mapped, report
