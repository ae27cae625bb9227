"""The detection benchmark's cells (bench/detection.py): regime x noise x dataset, and how a cell's
seed draws its subset, noise, split and starting weights, as `audit run` would."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from pretrain import pretrained_backbone  # bench/, beside this script

from auditor.config import RunConfig, resolve
from auditor.datasets import load_dataset
from auditor.datasets.pixel_map import Pixels
from auditor.datasets.registry import get_entry, load_registry
from auditor.prepare import Labels, choose_normalizer, decode, labels_for, split_and_limit
from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig
from methods import METHODS
from methods.backbones import build_backbone
from methods.base import Method

METHODS_TRAINED = ("ce", "eac")  # `audit run`'s default methods
LONG = {"limit": 1000, "epochs": 60, "batch_size": 64, "lr_gamma": 0.98}
# fine-tuning a backbone pre-trained on disjoint images (bench/pretrain.py), the long regime's
# 1,000 images and schedule, for 10 and 30 epochs
REGIMES = {
    "short": {},
    "long": LONG,
    "pretrained-short": LONG | {"epochs": 10},
    "pretrained-long": LONG | {"epochs": 30},
}
# Two-way swaps inside a few pairs of similar classes (the way human annotators confuse
# sadness and neutral, fear and surprise): `--noise-type matrix` with a matrix whose flips go
# from each class of a pair to the other, scaled to the rate (the other classes stay clean).
SWAP_PAIRS = {
    "demo": [("T-shirt/top", "Shirt"), ("Pullover", "Coat"), ("Sandal", "Sneaker")],
    "synth-faces": [("Sadness", "Neutral"), ("Fear", "Surprise"), ("Anger", "Disgust")],
}
# the swap cells' rate: 0.2 on the demo (3 pairs of 10 classes: a third of each paired class
# flips to its partner), 0.3 on synthetic faces (6 of 7 classes: 35% of each)
SWAP_RATE = {"demo": 0.2, "synth-faces": 0.3}
CELLS = [  # (dataset, regime, noise), in the order they are collected
    ("demo", "short", "pair"),
    ("demo", "long", "symmetric"),
    ("demo", "long", "pair"),
    ("demo", "long", "instance"),
    ("synth-faces", "short", "human-fer"),
    ("synth-faces", "short", "pair"),
    ("synth-faces", "short", "symmetric"),
    ("synth-faces", "short", "instance"),
    ("demo", "short", "symmetric"),
    ("demo", "short", "instance"),
    ("synth-faces", "long", "human-fer"),
    ("synth-faces", "long", "pair"),
    ("synth-faces", "long", "symmetric"),
    ("synth-faces", "long", "instance"),
    ("demo", "short", "swap"),
    ("demo", "long", "swap"),
    ("synth-faces", "long", "swap"),
    ("demo", "pretrained-short", "symmetric"),
    ("demo", "pretrained-long", "symmetric"),
    ("demo", "pretrained-short", "swap"),
    ("demo", "pretrained-long", "swap"),
    ("synth-faces", "pretrained-short", "human-fer"),
    ("synth-faces", "pretrained-long", "human-fer"),
    ("synth-faces", "pretrained-long", "symmetric"),
]


def swap_matrix(classes: list[str], pairs: list[tuple[str, str]], path: Path) -> Path:
    """Write the K x K matrix (rows = true class, header of class names) whose off-diagonal
    mass goes from each class of a pair to its partner only; unpaired classes stay clean."""
    matrix = np.eye(len(classes))
    for a, b in pairs:
        i, j = classes.index(a), classes.index(b)
        matrix[[i, j]] = 0.0
        matrix[i, j] = matrix[j, i] = 1.0
    header = ",".join(f'"{c}"' for c in classes)
    path.write_text(header + "\n" + "\n".join(",".join(f"{v:g}" for v in row) for row in matrix))
    return path


def noise_options(dataset: str, noise: str, classes: list[str], folder: Path) -> dict:
    """The `audit run` options of a cell's noise."""
    if noise != "swap":
        return {"noise_type": noise, "noise_rate": 0.3}
    folder.mkdir(parents=True, exist_ok=True)
    path = swap_matrix(classes, SWAP_PAIRS[dataset], folder / "swap.csv")
    return {"noise_type": "matrix", "noise_matrix": str(path), "noise_rate": SWAP_RATE[dataset]}


def cell_name(dataset: str, regime: str, noise: str) -> str:
    return f"{dataset}-{regime}-{noise}"


def seed_folder(out: Path, cell: str, seed: int) -> Path:
    return out / cell / f"seed-{seed}"


@dataclass
class Setup:
    """What every training of a cell's seed starts from: its data, given labels and schedule."""

    folder: Path
    config: RunConfig
    train_px: Pixels
    test_px: Pixels
    test_labels: np.ndarray
    labels: Labels
    normalize: Normalizer
    train_config: TrainConfig
    num_classes: int
    pretrained: Path | None  # the pre-trained backbone's file in the pre-trained regimes

    def make(self, seed: int, name: str) -> Method:
        """A fresh `name` method with `seed`'s initial weights (or the pre-trained ones)."""
        torch.manual_seed(seed)
        backbone = build_backbone(self.config.backbone, self.train_px.shape[1])
        if self.pretrained is not None:
            backbone.load_state_dict(torch.load(self.pretrained, weights_only=True))
        return METHODS[name](backbone, self.num_classes, self.config.methods[name])


def setup(dataset: str, regime: str, noise: str, out: Path, seed: int) -> Setup:
    """Draw a cell's subset, noise and split for `seed`, as `audit run` would."""
    entry = get_entry(dataset, load_registry())
    folder = seed_folder(out, cell_name(dataset, regime, noise), seed)
    cli = noise_options(dataset, noise, list(entry.classes), folder) | {
        "method": list(METHODS_TRAINED),
        "flip": entry.mirror_symmetric,
        "seed": seed,
    }
    config = resolve(dataset, cli | REGIMES[regime], entry.defaults)
    table = load_dataset(entry, seed=config.seed)
    train_table, test_table = split_and_limit(table, config)
    train_table, test_table, (train_px, test_px), _ = decode(train_table, test_table, config)
    labels = labels_for(train_table, config, train_px)
    path = None
    if regime.startswith("pretrained"):
        path = pretrained_backbone(
            dataset,
            config.backbone,
            config.image_size,
            set(train_table.sample_ids),
            out / f"pretrained-{dataset}-seed-{seed}.pt",  # disjoint from this seed's subset
        )
    normalize, _ = choose_normalizer(train_px, None if path is None else "pretrained")
    return Setup(
        folder,
        config,
        train_px,
        test_px,
        test_table.labels,
        labels,
        normalize,
        replace(config.train_config("cpu"), checkpoint=None),
        table.num_classes,
        path,
    )
