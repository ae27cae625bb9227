"""GSMC's EMA step count is part of its state dict: a model restored from a checkpoint makes
the same next teacher update as the model that was never stopped."""

import io

import torch

from auditor.training.augment import Augmenter
from methods import build_method
from methods.backbones import build_backbone
from methods.base import Batch
from methods.gsmc import GSMC, ema_decay


def make(seed: int) -> tuple[GSMC, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    method = build_method("gsmc", build_backbone("resnet-small", 1), 3)
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-2)
    return method, optimizer


def through_a_file(state: dict) -> dict:
    """What a checkpoint gives back (the engine saves with torch.save, loads weights only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def step(method: GSMC, optimizer: torch.optim.Optimizer, batch: Batch, aug: Augmenter) -> None:
    out = method.training_step(batch, aug)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    optimizer.step()
    method.after_step()


def test_a_restored_gsmc_goes_on_with_the_teacher_decay_where_it_stopped():
    g = torch.Generator().manual_seed(1)
    batches = [
        Batch(torch.randn(6, 1, 16, 16, generator=g), torch.arange(6) % 3, torch.arange(6), 0)
        for _ in range(4)
    ]
    method, optimizer = make(0)
    aug = Augmenter(torch.Generator().manual_seed(2))
    for batch in batches[:3]:
        step(method, optimizer, batch, aug)
    assert int(method.steps) == method.host_steps == 3

    state = through_a_file(method.state_dict())
    assert state["steps"].dtype == torch.long and int(state["steps"]) == 3
    restored, restored_optimizer = make(5)  # other weights, step count 0
    assert restored.host_steps == 0
    restored.load_state_dict(state)
    restored_optimizer.load_state_dict(through_a_file(optimizer.state_dict()))
    assert int(restored.steps) == restored.host_steps == 3
    restored_aug = Augmenter(torch.Generator().set_state(aug.g.get_state()))

    step(method, optimizer, batches[3], aug)  # the uninterrupted model
    step(restored, restored_optimizer, batches[3], restored_aug)
    assert int(restored.steps) == restored.host_steps == int(method.steps) == 4
    for (name, a), b in zip(
        method.state_dict().items(), restored.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    # the update used d_3 = 0.75, not d_0 = 0 (which would have copied the student)
    assert ema_decay(3) == 0.75
    assert not torch.equal(restored.teacher.fc.weight, restored.fc.weight)
