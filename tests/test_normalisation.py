"""Input normalisation: ImageNet's statistics with --weights, the training images' own without;
and the warning for --preset paper without --weights (issue 14)."""

import pytest
import torch

from auditor.config import resolve
from auditor.prepare import choose_normalizer, warn_if_from_scratch
from auditor.training import distributed
from auditor.training.augment import Normalizer

PIXELS = torch.tensor([[[[0, 255]], [[51, 102]], [[0, 204]]]], dtype=torch.uint8)  # [1, 3, 1, 2]


def test_imagenet_normaliser_values_by_hand():
    out = Normalizer.imagenet(3)(PIXELS)
    expected = torch.tensor(
        [
            [(0 - 0.485) / 0.229, (1 - 0.485) / 0.229],  # -2.1179, 2.2489
            [(0.2 - 0.456) / 0.224, (0.4 - 0.456) / 0.224],  # -1.1429, -0.25
            [(0 - 0.406) / 0.225, (0.8 - 0.406) / 0.225],  # -1.8044, 1.7511
        ]
    ).view(1, 3, 1, 2)
    assert torch.allclose(out, expected, atol=1e-5)
    assert out[0, 1, 0, 1].item() == pytest.approx(-0.25, abs=1e-5)


def test_imagenet_normaliser_one_channel_uses_the_mean_of_the_three():
    norm = Normalizer.imagenet(1)
    assert norm.mean == pytest.approx((0.449,)) and norm.std == pytest.approx((0.226,))
    out = norm(torch.tensor([[[[0, 255]]]], dtype=torch.uint8))
    assert out.flatten().tolist() == pytest.approx([-0.449 / 0.226, 0.551 / 0.226], abs=1e-5)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        Normalizer.imagenet(4)


def test_weights_choose_imagenet_statistics():
    norm, info = choose_normalizer(PIXELS, "imagenet")
    assert (norm.mean, norm.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert info == {
        "source": "imagenet",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    assert choose_normalizer(PIXELS, "/some/msceleb.pth")[1]["source"] == "imagenet"


def test_without_weights_the_training_images_statistics_as_before():
    pixels = torch.randint(0, 256, (8, 3, 4, 4), dtype=torch.uint8)
    norm, info = choose_normalizer(pixels, None)
    fitted = Normalizer.fit(pixels)
    assert (norm.mean, norm.std) == (fitted.mean, fitted.std)  # bit-identical
    assert info == {"source": "training images", "mean": list(fitted.mean), "std": list(fitted.std)}


def test_paper_preset_without_weights_warns_once(capsys):
    warn_if_from_scratch(resolve("demo", {"preset": "paper"}, {}))
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("audit: warning: --preset paper without --weights")
    assert "face-pretrained" in lines[0]


@pytest.mark.parametrize(
    "cli", [{"preset": "paper", "weights": "imagenet"}, {}, {"weights": "imagenet"}]
)
def test_no_warning_with_weights_or_without_the_preset(capsys, cli):
    warn_if_from_scratch(resolve("demo", cli, {}))
    assert capsys.readouterr().err == ""


def test_only_process_zero_warns(capsys, monkeypatch):
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    warn_if_from_scratch(resolve("demo", {"preset": "paper"}, {}))
    assert capsys.readouterr().err == ""
