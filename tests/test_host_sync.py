"""The training step never makes the host wait for the device.

On CUDA, an op whose result size or value the host must know (`.item()`, `bool(tensor)`,
`nonzero`, boolean-mask indexing, `unique`, ...) blocks the host until the GPU has caught up,
so the host cannot queue the next step ahead. Those ops are the same aten ops on the CPU, so a
dispatch mode that records every aten op of one `Step.run` finds them here without a GPU.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from auditor.training.augment import Augmenter, Normalizer
from auditor.training.step import Step, new_record
from methods import METHODS, build_method
from methods.backbones import build_backbone

aten = torch.ops.aten
SYNCING = {
    aten._local_scalar_dense.default,  # .item(), bool(), int(), float() of a tensor
    aten.is_nonzero.default,
    aten.nonzero.default,  # also torch.where(cond), argwhere
    aten.masked_select.default,
    aten.unique_consecutive.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.repeat_interleave.Tensor,
    aten.equal.default,
    aten.bincount.default,
}

INDEXING = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default}


class SyncRecorder(TorchDispatchMode):
    """Records every op that would read a device value on the host. `host_tensors` live on
    the host even when training on CUDA: Adam's `step` counters (kept on the CPU unless the
    optimiser is capturable or fused), whose `.item()` waits for nothing."""

    def __init__(self, host_tensors: list[torch.Tensor] = ()) -> None:
        super().__init__()
        self.found: list[str] = []
        self.host = {t.data_ptr() for t in host_tensors}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default and args[0].data_ptr() in self.host:
            return func(*args, **kwargs)
        indices = args[1] if func in INDEXING else []
        masked = any(
            isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices
        )
        if func in SYNCING or masked:
            self.found.append(str(func) + (" (boolean mask)" if masked else ""))
        return func(*args, **kwargs)


def make_step(name: str, n: int = 24, amp: bool = False) -> Step:
    torch.manual_seed(0)
    options = {"relabel_epoch": 1} if name == "scn" else {}  # relabels from the first epoch
    method = build_method(name, build_backbone("resnet-small", 1), 3, **options)
    method.to(memory_format=torch.channels_last)
    trainable = [p for p in method.parameters() if p.requires_grad]
    pixels = torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8)
    labels = torch.arange(n) % 3
    normalize = Normalizer.fit(pixels)
    augment = Augmenter(torch.Generator().manual_seed(0), normalizer=normalize)
    return Step(
        method,
        torch.optim.Adam(trainable),
        trainable,
        augment,
        normalize,
        pixels,
        labels,
        labels.clone(),
        new_record(method, 2, n, "cpu"),
        amp,
    )


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", list(METHODS))
def test_a_training_step_reads_nothing_back_from_the_device(name, amp):
    step = make_step(name, amp=amp)
    step.run(0, step.pixels[:8], torch.arange(8), torch.arange(8))  # warm-up: lazy state made
    idx = torch.tensor([3, 9, 11, 4, 20, 7, 1, 15])
    slots = torch.where(torch.arange(8) < 6, idx, 24)  # two unrecorded (balanced) draws
    adam_steps = [state["step"] for state in step.optimizer.state.values()]
    with SyncRecorder(adam_steps) as recorder:
        step.run(0, step.pixels[idx], idx, slots)
    assert recorder.found == [], f"{name}: host syncs in the step: {recorder.found}"
    recorded = step.record["loss"][0]
    assert (recorded[idx[:6]] > 0).all() and recorded[24] > 0  # written where told
    if name == "scn":
        assert len(step.relabels) == 2  # the relabel events are kept for the end of the epoch


def test_the_recorder_catches_the_syncs_it_names():
    x = torch.randn(6)
    with SyncRecorder() as recorder:
        _ = x[x > 0]
        _ = bool((x > 0).any())
        _ = torch.where(x > 0)
    assert len(recorder.found) == 3, recorder.found


def test_epoch_relabels_keep_only_changed_labels():
    step = make_step("ce", n=6)
    idx, y = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])
    step.relabels.append(
        torch.stack(
            [idx, torch.full_like(idx, 3), y, torch.tensor([0, 2, 2]), torch.tensor([0, 1, 0])]
        )
    )
    assert step.epoch_relabels().tolist() == [[1], [3], [1], [2]]
    assert step.relabels == [] and step.epoch_relabels().shape == (4, 0)
