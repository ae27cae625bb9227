"""The flip-CAM terms of EAC and GSMC stay float32 under bf16 autocast, where the naive
computation rounds a small difference of two large maps away."""

import torch

from methods.backbones import build_backbone
from methods.base import Batch
from methods.cam import class_activation_maps, flip_cam_disagreement, float32_cams
from methods.eac import eac_loss
from methods.gsmc import GSMC

# 1 sample, 2 channels (the second all 0), a 1x2 map; one class with weight [1, 0], so CAM is the
# first channel. hflip(CAM2) = [1000, 1000]: the differences are [1, 0], the squares [1, 0], the
# mean 0.5 -- exact in float32. bf16 keeps 8 significant bits: between 512 and 1024 its spacing
# is 4, so 1001 is stored as 1000.
BIG = torch.tensor([[[[1001.0, 1000.0]], [[0.0, 0.0]]]])
BIG_FLIPPED = torch.tensor([[[[1000.0, 1000.0]], [[0.0, 0.0]]]])
WEIGHT = torch.tensor([[1.0, 0.0]])
BY_HAND = 0.5


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_naive_bf16_cams_lose_the_difference():
    with bf16():
        cam1 = class_activation_maps(BIG, WEIGHT)
        naive = (
            (cam1 - class_activation_maps(BIG_FLIPPED, WEIGHT).flip(-1)).pow(2).mean(dim=(1, 2, 3))
        )
    assert cam1.dtype == torch.bfloat16  # autocast reaches the einsum
    assert naive.tolist() == [0.0] != [BY_HAND]


def test_flip_cam_disagreement_is_float32_under_bf16_autocast():
    with bf16():
        cam1, cam2 = float32_cams(BIG, WEIGHT), float32_cams(BIG_FLIPPED, WEIGHT)
        d = flip_cam_disagreement(cam1, cam2)
    assert cam1.dtype == cam2.dtype == d.dtype == torch.float32
    assert d.tolist() == [BY_HAND]
    # the same as without autocast
    plain = flip_cam_disagreement(float32_cams(BIG, WEIGHT), float32_cams(BIG_FLIPPED, WEIGHT))
    assert torch.equal(d, plain)


def test_eac_loss_under_bf16_autocast_keeps_the_cam_term_and_its_gradient():
    fmap1 = BIG.clone().requires_grad_(True)
    weight = WEIGHT.clone().requires_grad_(True)
    with bf16():
        loss, per_sample = eac_loss(
            torch.zeros(1, 2), torch.tensor([0]), fmap1, BIG_FLIPPED, weight, lam=1.0
        )
    assert per_sample.dtype == torch.float32 and per_sample.tolist() == [BY_HAND]
    loss.backward()
    assert weight.grad is None  # still detached
    # d/dF1 mean((F1 - flip F2)^2) = 2 (F1 - flip F2) / 2 = [1, 0]
    assert fmap1.grad.tolist() == [[[[1.0, 0.0]], [[0.0, 0.0]]]]


def test_bf16_feature_maps_get_their_gradient_through_the_float32_cams():
    fmap = BIG.to(torch.bfloat16).requires_grad_(True)  # what a backbone gives under autocast
    with bf16():
        d = flip_cam_disagreement(float32_cams(fmap, WEIGHT), float32_cams(fmap.detach(), WEIGHT))
    d.sum().backward()
    assert fmap.grad is not None and fmap.grad.dtype == torch.bfloat16


def test_gsmc_step_under_bf16_autocast_records_a_float32_flip_cam():
    torch.manual_seed(0)
    method = GSMC(build_backbone("resnet-small", 1), 3)
    x = torch.randn(4, 1, 16, 16)
    batch = Batch(x, torch.tensor([0, 1, 2, 0]), torch.arange(4), 0)

    class NoAugment:
        def random_hflip(self, x):
            return x

        def random_erase(self, x):
            return x

    with bf16():
        out = method.training_step(batch, NoAugment())
    assert out.signals["flip_cam"].dtype == torch.float32
    out.loss.backward()
    assert all(p.grad is not None for p in method.backbone.parameters())
