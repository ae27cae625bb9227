"""The GPU path's parts that run anywhere (bf16 autocast, the cache placement rule, compile
leaving parameter names alone), the whole of it through the CLI on the CPU (slow), and, where a
CUDA device is visible, a training step under CUDA's own sync detector."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from auditor.training.augment import Augmenter, Normalizer
from auditor.training.engine import TrainConfig, predict, resolve_amp, train
from auditor.training.feed import batches, cache_on_device, place_pixels
from auditor.training.sampling import batch_bounds
from auditor.training.step import Step
from methods import build_method
from methods.backbones import build_backbone
from tests.conftest import run_cli
from tests.test_cli_e2e import last_line_dir

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_amp_is_on_for_cuda_by_default_and_on_request():
    assert resolve_amp("auto", "cpu") is False
    assert resolve_amp("bf16", "cpu") is True
    assert resolve_amp("off", "cuda") is False
    assert resolve_amp("auto", "cuda") is (
        torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    )


def test_the_cache_goes_on_the_gpu_only_when_it_takes_at_most_half_its_free_memory():
    gib = 1 << 30
    assert cache_on_device(2 * gib, 80 * gib)  # RAF-DB at 224 px: 12k x 3 x 224 x 224 bytes
    assert cache_on_device(40 * gib, 80 * gib)
    assert not cache_on_device(40 * gib + 1, 80 * gib)  # AffectNet at 224 px is 43 GB: pinned
    pixels = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    assert place_pixels(pixels, "cpu") is pixels  # nothing moves on the CPU


@pytest.mark.parametrize(("n", "batch"), [(1, 4), (10, 4), (12, 4), (257, 256), (1000, 64)])
def test_batch_bounds_cover_every_position_once_in_near_equal_batches(n, batch):
    bounds = batch_bounds(n, batch)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= batch and max(sizes) - min(sizes) <= 1
    assert len(bounds) == -(-n // batch)


def test_compiling_the_backbone_keeps_parameter_names():
    method = build_method("eac", build_backbone("resnet-small", 1), 3)
    names = list(method.state_dict())
    method.backbone.compile()  # lazy: nothing is compiled until the first call
    assert list(method.state_dict()) == names


def separable(n: int = 192, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of 16 px images: a bright band at the top, middle or bottom."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    pixels = torch.randint(0, 60, (n, 1, 16, 16), generator=g, dtype=torch.uint8)
    for c in range(3):
        pixels[labels == c, :, 5 * c : 5 * c + 5, :] += 180
    return pixels, labels


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_training_under_bf16_autocast_learns_and_records_float32(amp):
    pixels, labels = separable()
    method = build_method("ce", build_backbone("resnet-small", 1), 3)
    config = TrainConfig(epochs=5, batch_size=32, amp=amp)
    result = train(method, pixels, labels, pixels, labels, Normalizer.fit(pixels), config)
    # it learns: bf16 sums run in a thread-dependent order on the CPU, so one epoch's eval
    # accuracy (BatchNorm running statistics) can dip; the best and the last are both high
    assert max(result.epoch_accuracy) > 0.9 and result.epoch_accuracy[-1] > 0.8
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in result.signals.values())
    logits, pooled = predict(method, pixels, Normalizer.fit(pixels), "cpu", amp=amp)
    assert logits.dtype == pooled.dtype == torch.float32


@pytest.mark.slow
def test_bf16_and_compile_through_the_cli(tmp_path):
    result = run_cli(
        "run",
        "demo",
        "--limit",
        "256",
        "--epochs",
        "2",
        "--method",
        "ce,eac",
        "--image-size",
        "28",
        "--amp",
        "bf16",
        "--compile",
        "--no-report",
        "--out",
        str(tmp_path),
    )
    run_dir = last_line_dir(result)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["precision"] == "bf16 autocast"
    assert manifest["config"]["compile"] is True and manifest["config"]["amp"] == "bf16"
    dynamics = pd.read_parquet(run_dir / "dynamics.parquet")
    assert np.isfinite(dynamics[["loss", "margin", "p_given"]].to_numpy()).all()
    assert np.isfinite(dynamics.loc[dynamics["method"] == "eac", "flip_cam"]).all()
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert len(samples) == 256 and samples["suspicion"].notna().all()


@cuda
@pytest.mark.parametrize("cache", ["device", "pinned"])
@pytest.mark.parametrize("name", ["ce", "eac", "scn", "rul", "gsmc"])
def test_a_cuda_step_never_synchronises(name, cache):
    """CUDA's own detector: any op that makes the host wait for the device raises."""
    torch.manual_seed(0)
    options = {"relabel_epoch": 1} if name == "scn" else {}
    method = build_method(name, build_backbone("resnet-small", 3), 3, **options)
    method.to("cuda").to(memory_format=torch.channels_last)
    trainable = [p for p in method.parameters() if p.requires_grad]
    pixels, labels = separable(64)
    pixels = pixels.repeat(1, 3, 1, 1)
    cached = pixels.to("cuda") if cache == "device" else pixels.pin_memory()
    given = labels.to("cuda")
    names = ("loss", "margin", "p_given", "correct", *method.extra_signals)
    step = Step(
        method,
        torch.optim.Adam(trainable),
        trainable,
        Augmenter(torch.Generator(device="cuda").manual_seed(0), normalizer=Normalizer.fit(pixels)),
        Normalizer.fit(pixels),
        cached,
        given,
        given.clone(),
        {s: torch.zeros(1, 65, device="cuda") for s in names},
        True,
    )
    idx = torch.arange(16)
    step.run(0, next(batches(cached, [idx], [idx.cuda()])), idx.cuda(), idx.cuda())  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for start in range(16, 64, 16):
            idx = torch.arange(start, start + 16)
            step.run(0, next(batches(cached, [idx], [idx.cuda()])), idx.cuda(), idx.cuda())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(step.record["loss"][0, :64]).all()
