"""auditor.symmetry: who decides whether to train with flips, which methods that leaves, and the
measurement of mirror symmetry on a model whose answer is known."""

import numpy as np
import pytest
import torch
from torch import nn

from auditor.errors import UserError
from auditor.symmetry import (
    SYMMETRY_RATIO,
    MirrorDecision,
    balanced_accuracy,
    chance_floor,
    decide_mirror,
    methods_for_mirror,
    mirror_accuracy,
)
from auditor.training.augment import Normalizer
from methods import METHODS


def test_the_flag_beats_the_registry_which_beats_the_measurement():
    asymmetric = (0.9, 0.3)
    assert decide_mirror(True, False, asymmetric, 10) == MirrorDecision(True, "--flip")
    assert decide_mirror(False, True, (0.9, 0.9), 10) == MirrorDecision(False, "--no-flip")
    assert decide_mirror(None, True, asymmetric, 10) == MirrorDecision(True, "declared")
    assert decide_mirror(None, False, (0.9, 0.9), 10) == MirrorDecision(False, "declared")
    assert decide_mirror(None, None, asymmetric, 10) == MirrorDecision(False, "measured", 0.9, 0.3)
    assert decide_mirror(None, None, None, 10) == MirrorDecision(False, "unknown")


def test_a_measurement_is_symmetric_from_the_ratio_on_and_says_nothing_near_chance():
    accuracy = 0.8
    just_enough = (accuracy, SYMMETRY_RATIO * accuracy)
    assert decide_mirror(None, None, just_enough, 10).flip
    assert decide_mirror(None, None, (accuracy, just_enough[1] - 0.01), 10).source == "measured"
    assert not decide_mirror(None, None, (accuracy, just_enough[1] - 0.01), 10).flip
    assert chance_floor(10) == pytest.approx(0.2) and chance_floor(2) == pytest.approx(0.6)
    # 0.55 is above chance for 10 classes, not clearly above it for 2
    fair = (0.55, 0.55)
    assert decide_mirror(None, None, fair, 10) == MirrorDecision(True, "measured", *fair)
    assert decide_mirror(None, None, fair, 2) == MirrorDecision(False, "unknown", *fair)
    assert decide_mirror(None, None, (float("nan"), 0.5), 10).source == "unknown"
    with pytest.raises(ValueError, match="at least 2 classes"):
        decide_mirror(None, None, None, 1)


def test_every_decision_says_what_and_why_in_one_sentence():
    measured = decide_mirror(None, None, (0.931, 0.412), 10).sentence("digits")
    assert measured == (
        "digits: mirror symmetry measured on held-out images: a model trained without flips "
        "scores a balanced accuracy of 93.1% on the held-out images and 41.2% on their mirror "
        "images (below 75% "
        "of 93.1%: not mirror-symmetric), training without flips."
    )
    assert "at least 75% of 93.1%: mirror-symmetric), training with flips." in (
        decide_mirror(None, None, (0.931, 0.9), 10).sentence("faces")
    )
    assert decide_mirror(None, True, None, 7).sentence("raf-db") == (
        "raf-db: declared mirror-symmetric in datasets.yaml: training with flips."
    )
    no_flip = decide_mirror(False, None, None, 7).sentence("x")
    assert no_flip == "x: --no-flip: training without flips."
    near_chance = decide_mirror(None, None, (0.15, 0.14), 10).sentence("mine")
    assert near_chance.startswith("mine: mirror symmetry could not be measured (a model trained")
    assert near_chance.endswith(
        "not clearly above chance): training without flips; pass --flip if a mirrored image "
        "keeps its class."
    )
    unknown = MirrorDecision(False, "unknown").sentence("mine")
    assert "neither declared in datasets.yaml nor measured" in unknown
    assert MirrorDecision(False, "measured", 0.9, 0.3).as_dict() == {
        "flip": False,
        "source": "measured",
        "accuracy": 0.9,
        "mirrored_accuracy": 0.3,
        "symmetry_ratio": SYMMETRY_RATIO,
    }
    with pytest.raises(ValueError, match="source"):
        MirrorDecision(True, "guessed")


def test_only_eac_and_gsmc_need_mirror_symmetry():
    assert sorted(n for n, cls in METHODS.items() if cls.needs_mirror_symmetry) == ["eac", "gsmc"]


NO_FLIP = MirrorDecision(False, "declared")


def test_with_flips_every_method_is_trained():
    flip = MirrorDecision(True, "measured", 0.9, 0.88)
    assert methods_for_mirror(["ce", "eac", "gsmc"], True, flip, "x") == (["ce", "eac", "gsmc"], [])
    assert methods_for_mirror(["ce", "scn", "rul"], True, NO_FLIP, "x") == (
        ["ce", "scn", "rul"],
        [],
    )


def test_without_flips_named_mirror_methods_are_refused_naming_them():
    with pytest.raises(UserError) as refused:
        methods_for_mirror(["ce", "eac"], True, NO_FLIP, "digits")
    assert str(refused.value) == (
        "eac's loss makes the attention maps of an image and of its mirror agree, and digits "
        "trains without flips (declared false by `mirror_symmetric` in datasets.yaml): drop it "
        "from --method, or pass --flip if a mirrored image keeps its class"
    )
    both = "eac's and gsmc's losses make .* drop them from --method, or drop --no-flip"
    with pytest.raises(UserError, match=both):
        methods_for_mirror(["eac", "gsmc"], True, MirrorDecision(False, "--no-flip"), "digits")


def test_without_flips_default_mirror_methods_are_dropped_with_a_warning():
    measured = MirrorDecision(False, "measured", 0.95, 0.4)
    kept, warnings = methods_for_mirror(["ce", "eac", "rul", "gsmc"], False, measured, "digits")
    assert kept == ["ce", "rul"]
    assert [w.split(" ")[0] for w in warnings] == ["eac", "gsmc"]
    assert "digits trains without flips (measured: a model trained without flips" in warnings[0]
    assert "balanced accuracy of 95.0% on the held-out images and 40.0%" in warnings[0]
    with pytest.raises(UserError, match=r"every method to train \(eac, gsmc\) .* pass --method ce"):
        methods_for_mirror(["eac", "gsmc"], False, measured, "digits")


class LeftBrighter(nn.Module):
    """As a `Method` evaluates: (logits, pooled). Class 1 when the left half of the image is
    brighter than the right half, else class 0."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = x.shape[-1] // 2
        difference = x[..., :half].mean(dim=(1, 2, 3)) - x[..., half:].mean(dim=(1, 2, 3))
        return torch.stack([-difference, difference], dim=1), difference[:, None]


def test_mirror_accuracy_of_a_model_that_reads_left_from_right():
    generator = torch.Generator().manual_seed(0)
    n, size = 70, 8
    labels = torch.randint(0, 2, (n,), generator=generator)
    bright = torch.randint(150, 256, (n, 1, size, size // 2), generator=generator)
    dark = torch.randint(0, 100, (n, 1, size, size // 2), generator=generator)
    left_bright = torch.cat([bright, dark], dim=-1)
    pixels = torch.where(labels.view(-1, 1, 1, 1) == 1, left_bright, left_bright.flip(-1))
    model = LeftBrighter().train()
    normalize = Normalizer((0.5,), (0.25,))
    images = pixels.to(torch.uint8)
    result = mirror_accuracy(model, images, labels.numpy(), normalize, "cpu", batch_size=16)
    assert result == (1.0, 0.0)  # 16 does not divide 70: the last batch is a partial one
    assert model.training  # its mode is given back
    half_wrong = np.where(np.arange(n) < n // 2, 1 - labels.numpy(), labels.numpy())
    result = mirror_accuracy(model, images, half_wrong, normalize, "cpu")
    recall = [
        np.mean(model(normalize(images))[0].argmax(1).numpy()[half_wrong == c] == c) for c in (0, 1)
    ]
    assert result == pytest.approx((np.mean(recall), 1 - np.mean(recall)))


def test_a_model_answering_the_largest_class_is_at_chance_not_symmetric():
    labels = torch.tensor([0] * 9 + [1])  # a 90/10 folder
    always_zero = torch.zeros(10, dtype=torch.long)
    assert balanced_accuracy(always_zero, labels) == 0.5  # plain accuracy would be 0.9
    assert decide_mirror(None, None, (0.5, 0.5), 2).source == "unknown"


def test_mirror_accuracy_agrees_with_the_engines_predictions_on_a_real_method():
    from auditor.training.engine import predict
    from methods import build_method
    from methods.backbones import build_backbone

    torch.manual_seed(0)
    method = build_method("ce", build_backbone("resnet-small", 1), 3)
    pixels = torch.randint(0, 256, (40, 1, 12, 12), dtype=torch.uint8)
    labels = torch.randint(0, 3, (40,))
    normalize = Normalizer.fit(pixels)
    accuracy, mirrored = mirror_accuracy(method, pixels, labels, normalize, "cpu")
    logits, _ = predict(method, pixels, normalize, "cpu")
    mirror_logits, _ = predict(method, pixels.flip(-1), normalize, "cpu")
    assert accuracy == balanced_accuracy(logits.argmax(1), labels)
    assert mirrored == balanced_accuracy(mirror_logits.argmax(1), labels)
