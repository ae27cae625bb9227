"""The pre-trained regime of the detection benchmark (bench/detection.py): a backbone
pre-trained on images disjoint from the audited ones, and the two baselines that need no
fine-tuning.

- `pretrained_backbone`: CE on PRETRAIN_IMAGES images with their own (clean) labels, for
  PRETRAIN_EPOCHS epochs, inputs normalised with ImageNet's statistics (what `--weights` uses):
  Fashion-MNIST's training images outside the audited subset, or a separately generated set of
  synthetic faces (another seed). Its backbone is saved as a plain state dict, the file
  `audit run --weights` reads; its head (same classes) is kept for the first baseline.
- `pretrained_probs`: the first baseline, the pre-trained model's own probabilities on the
  audited images, before any fine-tuning; cleanlab ranks by the normalized margin of those.
  The second, cleanlab's recipe for images (frozen features, cross-validated logistic
  regression), is what `audit run --weights` itself reads (`auditor.training.frozen`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from auditor.datasets import load_dataset
from auditor.datasets.cache import load_pixels, resize_array
from auditor.datasets.registry import get_entry, load_registry
from auditor.datasets.synth_faces import generate
from auditor.detectors.probabilities import normalized_margin
from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig, predict, train
from methods import METHODS
from methods.backbones import build_backbone

PRETRAIN_IMAGES = 6000
PRETRAIN_EPOCHS = 5
PRETRAIN_SEED = 11  # the synthetic faces' generator seed (the audited set uses 1 and 2)


def pretraining_images(
    dataset: str, image_size: int, audited: set[str]
) -> tuple[torch.Tensor, np.ndarray]:
    """(uint8 [n, C, S, S], labels [n]) disjoint from the audited samples (`audited`: their
    sample ids)."""
    if dataset.startswith("synth-faces"):
        images, labels = generate(PRETRAIN_IMAGES, seed=PRETRAIN_SEED)
        return resize_array(images, image_size), labels
    table = load_dataset(get_entry("fashion-mnist", load_registry()), seed=0)
    rows = np.flatnonzero((table.split == "train") & ~np.isin(table.sample_ids, list(audited)))
    rows = np.random.default_rng(0).choice(rows, PRETRAIN_IMAGES, replace=False)
    pixels, _ = load_pixels(table.select(np.sort(rows)), image_size)
    return pixels, table.labels[np.sort(rows)]


def pretrained_backbone(
    dataset: str, backbone: str, image_size: int, audited: set[str], path: Path
) -> Path:
    """Pre-train (once: kept at `path`) and save the backbone's state dict; the whole model's
    (backbone and head) beside it as `<path stem>-model.pt`."""
    if path.exists():
        return path
    pixels, labels = pretraining_images(dataset, image_size, audited)
    torch.manual_seed(PRETRAIN_SEED)
    model = METHODS["ce"](build_backbone(backbone, pixels.shape[1]), int(labels.max()) + 1)
    config = TrainConfig(epochs=PRETRAIN_EPOCHS, batch_size=128, seed=PRETRAIN_SEED)
    train(
        model,
        pixels,
        torch.from_numpy(labels),
        None,
        None,
        Normalizer.imagenet(pixels.shape[1]),
        config,
        final_pass=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.backbone.state_dict(), path)
    torch.save(model.state_dict(), model_path(path))
    return path


def model_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}-model.pt")


def pretrained_probs(
    path: Path, backbone: str, pixels: torch.Tensor, given: np.ndarray, num_classes: int
) -> np.ndarray:
    """[N] the pre-trained model's own normalized margin on the audited images `pixels` with
    their `given` labels, before any fine-tuning (higher = more suspect)."""
    model = METHODS["ce"](build_backbone(backbone, pixels.shape[1]), num_classes)
    model.load_state_dict(torch.load(model_path(path), weights_only=True))
    logits, _ = predict(model, pixels, Normalizer.imagenet(pixels.shape[1]), "cpu")
    return normalized_margin(torch.softmax(logits, dim=1).numpy(), given)
