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
    .venv/bin/python bench/detection.py --add-crossfit --seeds 0 1 2  # the baseline, afterwards
    .venv/bin/python bench/detection.py --table --readme          # scores the evidence
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from detection_cells import CELLS, METHODS_TRAINED, Setup, cell_name, seed_folder, setup
from detection_scoring import over_seeds, score_cell, table  # bench/, beside this script
from pretrain import pretrained_probs
from readme_block import write_block

from auditor.run import configure_threads
from auditor.training.crossfit import cross_fit
from auditor.training.engine import predict, train
from auditor.training.frozen import FROZEN, frozen_evidence
from methods import METHODS

REPO = Path(__file__).resolve().parents[1]
MARKERS = ("<!-- detection-benchmark -->", "<!-- /detection-benchmark -->")
FOLDS = 4


def collect(
    dataset: str, regime: str, noise: str, out: Path, seed: int, crossfit: bool = True
) -> None:
    """Train every method of the cell with `seed` (and, with `crossfit`, CE's cross-fit) and save
    the evidence."""
    cell = setup(dataset, regime, noise, out, seed)
    config, train_px, labels, make = cell.config, cell.train_px, cell.labels, cell.make
    arrays: dict[str, np.ndarray] = {"given": labels.given, "true": labels.true}
    info: dict = {
        "n_train": len(labels.given),
        "n_test": len(cell.test_labels),
        "epochs": config.epochs,
        "real_rate": float((labels.given != labels.true).mean()),
        "methods": {},
    }

    for name in METHODS_TRAINED:
        epoch_probs: list[np.ndarray] = []  # the eval-mode model after every epoch, for study

        def read(_epoch: int, method, _signals, store: list = epoch_probs) -> None:
            logits, _ = predict(method, train_px, cell.normalize, "cpu")
            store.append(torch.softmax(logits, dim=1).numpy().astype(np.float16))

        start = time.perf_counter()
        result = train(
            make(config.seed, name),
            train_px,
            torch.from_numpy(labels.given),
            cell.test_px,
            torch.from_numpy(cell.test_labels),
            cell.normalize,
            cell.train_config,
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
        print(f"{cell.folder} {name}: {info['methods'][name]['wall_s']:.0f} s", flush=True)
    if cell.pretrained is not None:
        arrays["baseline/pretrained_probs"] = pretrained_probs(
            cell.pretrained, config.backbone, train_px, labels.given, cell.num_classes
        )
        start = time.perf_counter()
        frozen = frozen_evidence(
            make(config.seed, "ce"),
            train_px,
            labels.given,
            cell.test_px,
            cell.test_labels,
            cell.normalize,
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
        arrays["ce/oos_probs"], info["crossfit"] = cross_fitted(cell)
    cell.folder.mkdir(parents=True, exist_ok=True)
    save(cell.folder, arrays, info)


def cross_fitted(cell: Setup) -> tuple[np.ndarray, dict]:
    """CE's 4-fold cross-fitted probabilities (the cleanlab baseline's input), and their cost."""
    start = time.perf_counter()
    probs = cross_fit(
        lambda s: cell.make(s, "ce"),
        cell.train_px,
        cell.labels.given,
        cell.normalize,
        cell.train_config,
        FOLDS,
    )
    info = {
        "wall_s": time.perf_counter() - start,
        "images": cell.config.epochs * len(cell.labels.given) * (FOLDS - 1),
    }
    print(f"{cell.folder} ce {FOLDS}-fold: {info['wall_s']:.0f} s", flush=True)
    return probs, info


def save(folder: Path, arrays: dict[str, np.ndarray], info: dict) -> None:
    """Write a seed's evidence, each file whole or not at all (a temporary file, then renamed)."""
    evidence = folder / "evidence.tmp.npz"
    np.savez_compressed(evidence, **{k: v for k, v in arrays.items() if v is not None})
    evidence.replace(folder / "evidence.npz")
    (folder / "info.tmp.json").write_text(json.dumps(info, indent=1))
    (folder / "info.tmp.json").replace(folder / "info.json")


def add_crossfit(dataset: str, regime: str, noise: str, out: Path, seed: int) -> None:
    """Add CE's cross-fitted baseline to a seed collected with `--no-crossfit`: the same subset,
    noise and split are drawn again (checked against the saved given labels)."""
    cell = setup(dataset, regime, noise, out, seed)
    with np.load(cell.folder / "evidence.npz") as saved:
        arrays = dict(saved)
    if not np.array_equal(arrays["given"], cell.labels.given):
        raise SystemExit(f"{cell.folder}: the labels drawn again differ from those saved")
    info = json.loads((cell.folder / "info.json").read_text())
    arrays["ce/oos_probs"], info["crossfit"] = cross_fitted(cell)
    save(cell.folder, arrays, info)


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
        "--add-crossfit",
        action="store_true",
        help="add CE's cross-fitted baseline to the seeds collected with --no-crossfit",
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
    if args.collect or args.add_crossfit:
        configure_threads()
    for cell in cells if args.collect or args.add_crossfit else []:  # every seed, then next cell
        for seed in args.seeds:
            folder = seed_folder(out, cell_name(*cell), seed)
            if args.collect and not (folder / "info.json").exists():
                collect(*cell, out, seed, crossfit=not args.no_crossfit)
            elif args.add_crossfit and "crossfit" not in json.loads(
                (folder / "info.json").read_text()
            ):
                add_crossfit(*cell, out, seed)
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
