"""The engine keeps the model of the epoch of best test accuracy: its probabilities on the
training images are those the model had after that epoch (read by a hook at every epoch), and
the method object is left with its final weights."""

import numpy as np
import torch

from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig, best_epoch_outputs, predict, train
from methods import build_method
from methods.backbones import build_backbone


def data() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8), torch.arange(40) % 4


def test_best_probs_are_the_model_after_the_best_epoch():
    pixels, labels = data()
    normalize = Normalizer.fit(pixels)
    per_epoch = []

    def hook(epoch, method, signals):
        logits, _ = predict(method, pixels, normalize, "cpu")
        per_epoch.append(torch.softmax(logits, dim=1).numpy())

    method = build_method("ce", build_backbone("resnet-small", 1), 4)
    test_labels = torch.randint(0, 4, (40,), generator=torch.Generator().manual_seed(1))
    result = train(
        method,
        pixels,
        labels,
        pixels,
        test_labels,
        normalize,
        TrainConfig(epochs=5, batch_size=8),
        on_epoch=hook,
    )
    assert result.best_epoch == int(np.argmax(result.epoch_accuracy)) + 1
    np.testing.assert_allclose(result.best_probs, per_epoch[result.best_epoch - 1], atol=1e-6)
    np.testing.assert_allclose(result.final_probs, per_epoch[-1], atol=1e-6)


def test_no_test_split_no_best_epoch():
    pixels, labels = data()
    method = build_method("ce", build_backbone("resnet-small", 1), 4)
    result = train(
        method,
        pixels,
        labels,
        None,
        None,
        Normalizer.fit(pixels),
        TrainConfig(epochs=1, batch_size=8),
    )
    assert result.best_epoch is None and result.best_probs is None


def test_an_earlier_best_epoch_is_read_from_its_weights_and_the_final_ones_are_kept():
    pixels, _ = data()
    normalize = Normalizer.fit(pixels)
    torch.manual_seed(1)
    final = build_method("ce", build_backbone("resnet-small", 1), 4).eval()
    torch.manual_seed(2)
    earlier = build_method("ce", build_backbone("resnet-small", 1), 4).eval()
    final_before = {k: v.clone() for k, v in final.state_dict().items()}
    out = best_epoch_outputs(
        final, earlier.state_dict(), [0.5, 0.9, 0.7], pixels, normalize, "cpu", False, np.zeros(1)
    )
    logits, _ = predict(earlier, pixels, normalize, "cpu")
    assert out["best_epoch"] == 2
    np.testing.assert_allclose(out["best_probs"], torch.softmax(logits, 1).numpy(), atol=1e-6)
    for k, v in final.state_dict().items():
        assert torch.equal(v, final_before[k]), k
    last = best_epoch_outputs(final, None, [0.5, 0.9], pixels, normalize, "cpu", False, "probs")
    assert last == {"best_epoch": 2, "best_probs": "probs"}
