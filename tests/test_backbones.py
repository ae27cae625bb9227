"""Every backbone gives a last-conv map, so every method (and its CAMs) runs on every backbone."""

import pytest
import torch

from auditor.training.augment import Augmenter, Normalizer
from methods import METHODS, build_method
from methods.backbones import BACKBONES, build_backbone
from methods.base import Batch


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_feature_map(name):
    backbone = build_backbone(name, 1).eval()
    fmap = backbone(torch.randn(2, 1, 32, 32))
    assert fmap.ndim == 4 and fmap.shape[:2] == (2, backbone.out_channels)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2"])
def test_every_method_trains_a_step_on_the_large_backbones(method, name):
    torch.manual_seed(0)
    net = build_method(method, build_backbone(name, 3), 3)
    batch = Batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), torch.arange(4), epoch=20)
    out = net.training_step(
        batch, Augmenter(torch.Generator().manual_seed(0), normalizer=Normalizer((0.5,), (0.25,)))
    )
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.logits.shape == (4, 3)
    assert set(out.signals) == set(net.extra_signals)
