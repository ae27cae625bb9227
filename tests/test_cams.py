"""Class activation maps are the spatial decomposition of each method's logits: summed (RUL) or
averaged (the fc-on-GAP methods) over positions they give the logit up to a per-class constant.
Checked on tiny backbones in eval mode, against the logits of `forward`."""

import pytest
import torch

from methods import build_method
from methods.backbones import build_backbone


def logits_and_cam_totals(method: str, reduce: str, **options) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_method(method, build_backbone("resnet-small", 1), 4, **options)
    model.train()
    with torch.no_grad():  # give the BatchNorms running statistics other than 0 and 1
        for _ in range(3):
            model(torch.randn(8, 1, 28, 28))
    model.eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        logits, _ = model(x)
        cams = model.cams(model.backbone(x))
    totals = cams.sum(dim=(2, 3)) if reduce == "sum" else cams.mean(dim=(2, 3))
    return logits, totals


@pytest.mark.parametrize(
    ("method", "reduce", "options"),
    [
        ("ce", "mean", {}),
        ("eac", "mean", {}),
        ("rul", "sum", {}),
        ("rul", "sum", {"heads": "linear"}),
    ],
)
def test_cams_add_up_to_the_logits_up_to_a_constant_per_class(method, reduce, options):
    logits, totals = logits_and_cam_totals(method, reduce, **options)
    # the constant (bias, BatchNorm offsets) is the same for every image: differences agree
    assert torch.allclose(logits - logits[0], totals - totals[0], atol=1e-4)
    assert not torch.allclose(logits[1], logits[0])
