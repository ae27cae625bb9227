"""GSMC (Huang, Liu & Zhou, CGI 2024), as its single-script release trains it.

A student and its EMA teacher (decay min(1 - 1/(t + 1), 0.999), updated after every step, t
counting steps from 0). The training view x = erase(flip(image)); the second view is its
mirror hflip(x) (shared erasure, `erasure="same"`; `"independent"` erases the mirror anew):

    L = CE(S(x), y) + 0.9 * KL(p_T(hflip x) || p_S(x)) + 0.2 * MSE(CAM(x), hflip(CAM(hflip x)))

CAMs are the student's (fc weight detached, as in EAC), and they and their squared difference
are computed in float32 even under bf16 autocast (`methods.cam.float32_cams`). The step count t
is a persistent buffer (`steps`), so checkpoints hold it and a resumed run goes on with the
teacher's decay where it stopped. The release trains on clean labels (it reads a noise file and
never uses it); we train on the given labels like every method.
The student is evaluated. Per-sample signals: `kd` = KL(p_T || p_S) and `flip_cam`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from auditor.options import Options, option
from methods.base import Augment, Batch, Method, StepOutput, cross_entropy, register_method
from methods.cam import flip_cam_disagreement, float32_cams
from methods.eac import ERASURES


@dataclass(frozen=True)
class GSMCOptions(Options):
    erasure: str = option(
        "same",
        "same: the mirror view shares the erasure (release); independent: erased anew",
        choices=ERASURES,
    )


def ema_decay(step: int, cap: float = 0.999) -> float:
    """min(1 - 1 / (step + 1), cap): 0 at the first step (the teacher copies the student)."""
    return min(1.0 - 1.0 / (step + 1), cap)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, for parameters; buffers are copied."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(decay).add_(s.detach(), alpha=1 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)


def kl_per_sample(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_T || p_S) = sum_k p_T,k (log p_T,k - log p_S,k), one value per sample."""
    log_t = F.log_softmax(teacher_logits, dim=1)
    log_s = F.log_softmax(student_logits, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1)


def gsmc_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    cam: torch.Tensor,
    cam_of_flipped: torch.Tensor,
    *,
    kd_weight: float = 0.9,
    cam_weight: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total loss, per-sample KL, per-sample flip-CAM disagreement). The disagreement is
    computed in float32 with autocast off (pass `float32_cams` maps)."""
    kd = kl_per_sample(teacher_logits, student_logits)
    flip_cam = flip_cam_disagreement(cam, cam_of_flipped)
    loss = cross_entropy(student_logits, y) + kd_weight * kd.mean() + cam_weight * flip_cam.mean()
    return loss, kd, flip_cam


class Student(nn.Module):
    def __init__(self, backbone: nn.Module, fc: nn.Linear) -> None:
        super().__init__()
        self.backbone, self.fc = backbone, fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x).mean(dim=(2, 3)))


@register_method
class GSMC(Method):
    name = "gsmc"
    options_class = GSMCOptions
    extra_signals = ("kd", "flip_cam")
    needs_mirror_symmetry = True  # CAM(x) and hflip(CAM(hflip x)) must agree
    options: GSMCOptions

    def __init__(
        self, backbone: nn.Module, num_classes: int, options: GSMCOptions | None = None
    ) -> None:
        super().__init__(backbone, num_classes, options)
        self.teacher = copy.deepcopy(Student(self.backbone, self.fc))
        self.teacher.requires_grad_(False)
        # t, in the state dict so that a resumed run keeps the decay; `host_steps` mirrors it on
        # the host, so that the step never reads the device (restored on loading a state dict)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.host_steps = 0
        self.register_load_state_dict_post_hook(restore_host_steps)

    def training_step(self, batch: Batch, aug: Augment) -> StepOutput:
        base = aug.random_hflip(batch.x)
        x1 = aug.random_erase(base)
        x2 = x1.flip(-1) if self.options.erasure == "same" else aug.random_erase(base.flip(-1))
        fmap1, fmap2 = self.backbone(x1), self.backbone(x2)
        logits = self.fc(fmap1.mean(dim=(2, 3)))
        with torch.no_grad():
            teacher_logits = self.teacher(x2)
        w = self.fc.weight.detach()
        loss, kd, flip_cam = gsmc_loss(
            logits,
            teacher_logits,
            batch.y,
            float32_cams(fmap1, w),
            float32_cams(fmap2, w),
        )
        return StepOutput(
            loss=loss, logits=logits, signals={"kd": kd.detach(), "flip_cam": flip_cam.detach()}
        )

    def after_step(self) -> None:
        ema_update(self.teacher, Student(self.backbone, self.fc), ema_decay(self.host_steps))
        self.steps.add_(1)
        self.host_steps += 1


def restore_host_steps(module: GSMC, incompatible_keys: object) -> None:
    """After `load_state_dict`: the host's step count <- the loaded buffer (one read, at load)."""
    module.host_steps = int(module.steps)
