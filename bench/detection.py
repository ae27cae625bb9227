"""Detection benchmark (a script, not a test): the matrix of regimes and noises a user can be in.

Cells: regime {short: the registry entry as it is (10 epochs); long: the memorisation setting,
1,000 training images, 60 epochs, batch 64, Adam decayed by 0.98 per epoch, where plain
cross-entropy fits the wrong labels; pretrained-short / pretrained-long: the same 1,000 images
and schedule for 10 / 30 epochs, fine-tuning a backbone pre-trained on disjoint images
(bench/pretrain.py)} x noise {symmetric, pair, instance, human-fer where the classes are
expressions, swap: two-way swaps inside three pairs of similar classes} at 30% (swap: 20% on
Fashion-MNIST, see SWAP_RATE), on `demo` (Fashion-MNIST) and `synth-faces`.

Per cell it trains what `audit run` trains with its defaults (ce and eac, through the engine's
`train`), plus the baselines: CE on 4-fold cross-fitted probabilities (cleanlab's
`find_label_issues`, prune_by_noise_rate, ranked by normalized margin; skipped with
`--no-crossfit`), and in the pre-trained cells the pre-trained model's own probabilities before
any fine-tuning and cleanlab's recipe for images (frozen features, cross-validated logistic
regression), and keeps every method's evidence in `<out>/<cell>/evidence.npz` (`--collect`),
with each epoch's training-view probabilities (the early-learning reading's input) and, for
study, the eval-mode model's probabilities after every epoch. Scoring (bench/detection_scoring.py)
is then `auditor.scoring.score_all`, the tool's own function, with its own decisions (which
members, which epochs to read), so the table can be rebuilt from the evidence without training
(`--table`). Per cell it reports: suspicion AP / AUROC, the best single detector and its AP,
the baselines' AP, whether the floors are met (`floors_met`), the flags' precision / recall /
F1, the members, and the compute (trained images, wall).

Seeds (`--seeds`): each seed draws its own subset, noise and initial weights (and, on
Fashion-MNIST, its own disjoint pre-training images), kept in `<out>/<cell>/seed-<k>/`. The table
shows each figure's mean over the seeds collected, with its range when there are several, and
judges the floors on the means.

    .venv/bin/python bench/detection.py --collect --seeds 0 1 2   # trains every cell (long)
    .venv/bin/python bench/detection.py --table --readme          # scores the evidence
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from detection_scoring import over_seeds, score_cell, table  # bench/, beside this script
from pretrain import pretrained_backbone, pretrained_probs
from readme_block import write_block

from auditor.config import resolve
from auditor.datasets import load_dataset
from auditor.datasets.registry import get_entry, load_registry
from auditor.prepare import choose_normalizer, decode, labels_for, split_and_limit
from auditor.run import configure_threads
from auditor.training.crossfit import cross_fit
from auditor.training.engine import predict, train
from auditor.training.frozen import FROZEN, frozen_evidence
from methods import METHODS
from methods.backbones import build_backbone

REPO = Path(__file__).resolve().parents[1]
MARKERS = ("<!-- detection-benchmark -->", "<!-- /detection-benchmark -->")
METHODS_TRAINED = ("ce", "eac")  # `audit run`'s default methods
FOLDS = 4
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


def collect(
    dataset: str, regime: str, noise: str, out: Path, seed: int, crossfit: bool = True
) -> None:
    """Train every method of the cell with `seed` (and, with `crossfit`, CE's cross-fit) and save
    the evidence."""
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
    weights = None
    if regime.startswith("pretrained"):
        path = pretrained_backbone(
            dataset,
            config.backbone,
            config.image_size,
            set(train_table.sample_ids),
            out / f"pretrained-{dataset}-seed-{seed}.pt",  # disjoint from this seed's subset
        )
        weights = torch.load(path, weights_only=True)
    normalize, _ = choose_normalizer(train_px, None if weights is None else "pretrained")
    train_config = replace(config.train_config("cpu"), checkpoint=None)
    arrays: dict[str, np.ndarray] = {"given": labels.given, "true": labels.true}
    info: dict = {
        "n_train": len(labels.given),
        "n_test": len(test_table),
        "epochs": config.epochs,
        "real_rate": float((labels.given != labels.true).mean()),
        "methods": {},
    }

    def make(seed: int, name: str) -> object:
        torch.manual_seed(seed)
        backbone = build_backbone(config.backbone, train_px.shape[1])
        if weights is not None:
            backbone.load_state_dict(weights)
        return METHODS[name](backbone, table.num_classes, config.methods[name])

    for name in METHODS_TRAINED:
        epoch_probs: list[np.ndarray] = []  # the eval-mode model after every epoch, for study

        def read(_epoch: int, method, _signals, store: list = epoch_probs) -> None:
            logits, _ = predict(method, train_px, normalize, "cpu")
            store.append(torch.softmax(logits, dim=1).numpy().astype(np.float16))

        start = time.perf_counter()
        result = train(
            make(config.seed, name),
            train_px,
            torch.from_numpy(labels.given),
            test_px,
            torch.from_numpy(test_table.labels),
            normalize,
            train_config,
            on_epoch=read,
        )
        arrays[f"{name}/epoch_probs"] = np.stack(epoch_probs)
        info["methods"][name] = {
            "wall_s": time.perf_counter() - start,
            "images": config.epochs * len(labels.given),
            "test_accuracy": result.epoch_accuracy,
        }
        for key, value in result.signals.items():
            arrays[f"{name}/signal/{key}"] = value
        arrays[f"{name}/final_probs"] = result.final_probs
        arrays[f"{name}/view_probs"] = result.epoch_probs
        arrays[f"{name}/best_probs"] = result.best_probs
        info["methods"][name]["best_epoch"] = result.best_epoch
        arrays[f"{name}/embeddings"] = result.embeddings
        if result.flip_attention is not None:
            arrays[f"{name}/flip_attention"] = result.flip_attention
        if METHODS[name].relabels:
            arrays[f"{name}/final_labels"] = result.final_labels
        print(
            f"{cell_name(dataset, regime, noise)} seed {seed} {name}: "
            f"{info['methods'][name]['wall_s']:.0f} s",
            flush=True,
        )
    if weights is not None:
        arrays["baseline/pretrained_probs"] = pretrained_probs(
            path, config.backbone, train_px, labels.given, table.num_classes
        )
        start = time.perf_counter()
        frozen = frozen_evidence(
            make(config.seed, "ce"),
            train_px,
            labels.given,
            test_px,
            test_table.labels,
            normalize,
            "cpu",
            None,
            config.seed,
        )
        arrays[f"{FROZEN}/final_probs"] = frozen.final_probs
        arrays[f"{FROZEN}/embeddings"] = frozen.embeddings
        info["frozen"] = {
            "wall_s": time.perf_counter() - start,
            "test_accuracy": frozen.epoch_accuracy,
        }
    if crossfit:
        start = time.perf_counter()
        arrays["ce/oos_probs"] = cross_fit(
            lambda s: make(s, "ce"), train_px, labels.given, normalize, train_config, FOLDS
        )
        info["crossfit"] = {
            "wall_s": time.perf_counter() - start,
            "images": config.epochs * len(labels.given) * (FOLDS - 1),
        }
        print(
            f"{folder.parent.name} seed {seed} ce {FOLDS}-fold: {info['crossfit']['wall_s']:.0f} s",
            flush=True,
        )
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / "evidence.npz", **{k: v for k, v in arrays.items() if v is not None}
    )
    (folder / "info.json").write_text(json.dumps(info, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "reports" / "detection"))
    parser.add_argument("--collect", action="store_true", help="train the cells not collected yet")
    parser.add_argument("--cells", nargs="+", help="only these cells (dataset-regime-noise)")
    parser.add_argument(
        "--no-crossfit",
        action="store_true",
        help="collect without CE's cross-fitted baseline (its column reads -)",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="collect these seeds (default 0)"
    )
    parser.add_argument("--table", action="store_true", help="score the collected evidence")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    out = Path(args.out)
    by_name = {cell_name(*c): c for c in CELLS}
    cells = CELLS if args.cells is None else [by_name[c] for c in args.cells]  # in that order
    if args.collect:
        configure_threads()
        for cell in cells:  # a cell's every seed before the next cell
            for seed in args.seeds:
                if not (seed_folder(out, cell_name(*cell), seed) / "info.json").exists():
                    collect(*cell, out, seed, crossfit=not args.no_crossfit)
    rows = []
    for cell in cells:
        collected = sorted((out / cell_name(*cell)).glob("seed-*/info.json"))
        if collected:
            rows.append(over_seeds([score_cell(info.parent) for info in collected]))
    text = table(rows)
    print(text)
    (out / "table.json").write_text(json.dumps(rows, indent=1, default=float))
    if args.readme:
        write_block(MARKERS, text)


if __name__ == "__main__":
    main()
