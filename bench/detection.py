"""Detection benchmark (a script, not a test): the matrix of regimes and noises a user can be in.

Cells: regime {short: the registry entry as it is (10 epochs); long: the memorisation setting,
1,000 training images, 60 epochs, batch 64, Adam decayed by 0.98 per epoch, where plain
cross-entropy fits the wrong labels} x noise {symmetric, pair, instance, and human-fer where the
classes are expressions} at 30%, on `demo` (Fashion-MNIST) and `synth-faces`.

Per cell it trains what `audit run` trains with its defaults (ce and eac, through the engine's
`train`), plus the baseline: CE on 4-fold cross-fitted probabilities (cleanlab's
`find_label_issues`, prune_by_noise_rate, ranked by normalized margin), and keeps every
method's evidence in `<out>/<cell>/evidence.npz` (`--collect`). Scoring is then
`auditor.scoring.score_all`, the tool's own function, with its own decisions (which members,
whether to read the cross-fitted probabilities), so the table can be rebuilt from the evidence
without training (`--table`). Per cell it reports: suspicion AP / AUROC, the best single
detector and its AP, the cross-fitted baseline's AP, the flags' precision / recall / F1, what
the tool decided, and the compute (trained images, wall).

    .venv/bin/python bench/detection.py --collect          # trains every cell (long)
    .venv/bin/python bench/detection.py --table --readme   # scores the evidence, writes README
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from readme_block import write_block  # bench/, beside this script

from auditor.config import resolve
from auditor.datasets import load_dataset
from auditor.datasets.registry import get_entry, load_registry
from auditor.detectors.probabilities import cleanlab_detector
from auditor.evaluation import accuracy_protocols, detection_metrics
from auditor.evidence import MethodEvidence
from auditor.run import choose_normalizer, configure_threads, decode, labels_for, split_and_limit
from auditor.scoring import score_all
from auditor.training.crossfit import cross_fit
from auditor.training.engine import predict, train
from methods import METHODS
from methods.backbones import build_backbone

REPO = Path(__file__).resolve().parents[1]
MARKERS = ("<!-- detection-benchmark -->", "<!-- /detection-benchmark -->")
METHODS_TRAINED = ("ce", "eac")  # `audit run`'s default methods
FOLDS = 4
LONG = {"limit": 1000, "epochs": 60, "batch_size": 64, "lr_gamma": 0.98}
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
]


def cell_name(dataset: str, regime: str, noise: str) -> str:
    return f"{dataset}-{regime}-{noise}"


def collect(dataset: str, regime: str, noise: str, out: Path) -> None:
    """Train every method of the cell (and CE's cross-fit) and save the evidence."""
    entry = get_entry(dataset, load_registry())
    cli = {"noise_type": noise, "noise_rate": 0.3, "method": list(METHODS_TRAINED),
           "flip": entry.mirror_symmetric}  # fmt: skip
    config = resolve(dataset, cli | (LONG if regime == "long" else {}), entry.defaults)
    table = load_dataset(entry, seed=config.seed)
    train_table, test_table = split_and_limit(table, config)
    train_table, test_table, (train_px, test_px), _ = decode(train_table, test_table, config)
    labels = labels_for(train_table, config, train_px)
    normalize, _ = choose_normalizer(train_px, None)
    train_config = replace(config.train_config("cpu"), checkpoint=None)
    arrays: dict[str, np.ndarray] = {"given": labels.given, "true": labels.true}
    info: dict = {"n_train": len(labels.given), "n_test": len(test_table), "epochs": config.epochs,
                  "real_rate": float((labels.given != labels.true).mean()), "methods": {}}  # fmt: skip

    def make(seed: int, name: str) -> object:
        torch.manual_seed(seed)
        backbone = build_backbone(config.backbone, train_px.shape[1])
        return METHODS[name](backbone, table.num_classes, config.methods[name])

    for name in METHODS_TRAINED:
        epoch_probs: list[np.ndarray] = []  # the eval-mode model after every epoch, for study

        def read(_epoch: int, method, _signals, store: list = epoch_probs) -> None:
            logits, _ = predict(method, train_px, normalize, "cpu")
            store.append(torch.softmax(logits, dim=1).numpy().astype(np.float16))

        start = time.perf_counter()
        result = train(make(config.seed, name), train_px, torch.from_numpy(labels.given), test_px,
                       torch.from_numpy(test_table.labels), normalize, train_config, on_epoch=read)  # fmt: skip
        arrays[f"{name}/epoch_probs"] = np.stack(epoch_probs)
        info["methods"][name] = {"wall_s": time.perf_counter() - start,
                                 "images": config.epochs * len(labels.given),
                                 "test_accuracy": result.test_accuracy}  # fmt: skip
        for key, value in result.signals.items():
            arrays[f"{name}/signal/{key}"] = value
        arrays[f"{name}/final_probs"] = result.probs
        arrays[f"{name}/best_probs"] = result.best_probs
        info["methods"][name]["best_epoch"] = result.best_epoch
        arrays[f"{name}/embeddings"] = result.embeddings
        if result.flip_attention is not None:
            arrays[f"{name}/flip_attention"] = result.flip_attention
        if METHODS[name].relabels:
            arrays[f"{name}/final_labels"] = result.final_labels
        print(f"{cell_name(dataset, regime, noise)} {name}: {info['methods'][name]['wall_s']:.0f} s",
              flush=True)  # fmt: skip
    start = time.perf_counter()
    arrays["ce/oos_probs"] = cross_fit(lambda s: make(s, "ce"), train_px, labels.given, normalize,
                                       train_config, FOLDS)  # fmt: skip
    info["crossfit"] = {"wall_s": time.perf_counter() - start,
                        "images": config.epochs * len(labels.given) * (FOLDS - 1)}  # fmt: skip
    print(f"{cell_name(dataset, regime, noise)} ce {FOLDS}-fold: {info['crossfit']['wall_s']:.0f} s",
          flush=True)  # fmt: skip
    folder = out / cell_name(dataset, regime, noise)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / "evidence.npz", **{k: v for k, v in arrays.items() if v is not None}
    )
    (folder / "info.json").write_text(json.dumps(info, indent=1))


def load_evidence(folder: Path) -> tuple[list[MethodEvidence], dict, np.ndarray, np.ndarray, dict]:
    """(evidence per method without the cross-fit, {method: test accuracy protocols}, given,
    true, info) of a collected cell; CE's cross-fitted probabilities are in `arrays`."""
    arrays = dict(np.load(folder / "evidence.npz"))
    info = json.loads((folder / "info.json").read_text())
    evidence = []
    for name, method in info["methods"].items():
        prefix = f"{name}/signal/"
        if f"{name}/best_probs" not in arrays:  # collected before the engine kept them
            epoch = int(np.argmax(method["test_accuracy"])) + 1
            arrays[f"{name}/best_probs"] = arrays[f"{name}/epoch_probs"][epoch - 1].astype(
                np.float32
            )
            method["best_epoch"] = epoch
        evidence.append(MethodEvidence(
            name=name,
            signals={k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
            final_probs=arrays[f"{name}/final_probs"],
            embeddings=arrays[f"{name}/embeddings"],
            final_labels=arrays.get(f"{name}/final_labels"),
            flip_attention=arrays.get(f"{name}/flip_attention"),
            best_probs=arrays[f"{name}/best_probs"],
            best_epoch=method["best_epoch"],
        ))  # fmt: skip
    accuracy = {m: accuracy_protocols(v["test_accuracy"]) for m, v in info["methods"].items()}
    info["oos_probs"] = arrays["ce/oos_probs"]
    return evidence, accuracy, arrays["given"], arrays["true"], info


def score_cell(folder: Path) -> dict:
    evidence, accuracy, given, true, info = load_evidence(folder)
    is_noisy = given != true
    last5 = {m: a["last5_mean"] for m, a in accuracy.items()}
    scores = score_all(evidence, given, last5)
    metrics = {n: detection_metrics(s, is_noisy) for n, s in scores.scores.items()}
    best = max((n for n in metrics if n != "suspicion"), key=lambda n: metrics[n]["ap"])
    base_score, base_flags = cleanlab_detector(info["oos_probs"], given)
    base = detection_metrics(base_score, is_noisy)
    flagged = detection_metrics(scores.scores["suspicion"], is_noisy, scores.flags["suspicion"])
    base_flagged = detection_metrics(base_score, is_noisy, base_flags)
    p, r, f1 = (flagged[k] for k in ("precision", "recall", "f1"))
    bp, br, bf1 = (base_flagged[k] for k in ("precision", "recall", "f1"))
    images = sum(m["images"] for m in info["methods"].values())
    wall = sum(m["wall_s"] for m in info["methods"].values())
    return {
        "cell": folder.name, "real_rate": info["real_rate"], "n_train": info["n_train"],
        "suspicion": metrics["suspicion"], "best": best, "best_ap": metrics[best]["ap"],
        "baseline": base, "flags": (p, r, f1), "baseline_flags": (bp, br, bf1),
        "flagged": int(scores.flags["suspicion"].sum()), "noisy": int(is_noisy.sum()),
        "members": scores.ensemble_members, "images": images, "wall": wall,
        "crossfit_images": info["crossfit"]["images"], "crossfit_wall": info["crossfit"]["wall_s"],
        "accuracy": {m: a["last5_mean"] for m, a in accuracy.items()},
    }  # fmt: skip


def table(rows: list[dict]) -> str:
    lines = [
        "| cell | real rate | suspicion AP / AUROC | best single detector (AP) | cleanlab, 4-fold cross-fitted (AP) | floors met | flags P / R / F1 (flagged / noisy) | ensemble members | trained images, wall |",
        "|" + "---|" * 9,
    ]  # fmt: skip
    for r in rows:
        s, (p, rec, f1) = r["suspicion"], r["flags"]
        floors = s["ap"] >= r["best_ap"] - 0.01 and s["ap"] >= r["baseline"]["ap"] - 0.01
        f1_ok = s["ap"] < 0.9 or f1 >= 0.85
        lines.append(
            f"| {r['cell']} | {r['real_rate']:.3f} | {s['ap']:.3f} / {s['auroc']:.3f} "
            f"| {r['best']} ({r['best_ap']:.3f}) | {r['baseline']['ap']:.3f} "
            f"| {'yes' if floors and f1_ok else 'no'} "
            f"| {p:.2f} / {rec:.2f} / {f1:.2f} ({r['flagged']} / {r['noisy']}) "
            f"| {', '.join(r['members'])} | {r['images']:,}, {r['wall']:.0f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "reports" / "detection"))
    parser.add_argument("--collect", action="store_true", help="train the cells not collected yet")
    parser.add_argument("--cells", nargs="+", help="only these cells (dataset-regime-noise)")
    parser.add_argument("--table", action="store_true", help="score the collected evidence")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    out = Path(args.out)
    cells = [c for c in CELLS if args.cells is None or cell_name(*c) in args.cells]
    if args.collect:
        configure_threads()
        for cell in cells:
            if not (out / cell_name(*cell) / "info.json").exists():
                collect(*cell, out)
    rows = [
        score_cell(out / cell_name(*c))
        for c in cells
        if (out / cell_name(*c) / "info.json").exists()
    ]
    text = table(rows)
    print(text)
    (out / "table.json").write_text(json.dumps(rows, indent=1, default=float))
    if args.readme:
        write_block(MARKERS, text)


if __name__ == "__main__":
    main()
