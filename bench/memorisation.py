"""Memorisation benchmark (a script, not a test): the regime FER users train in, on this CPU.

The `demo-long` registry entry (1,000 Fashion-MNIST training images at 28 px, resnet-small, 60
epochs, batch 64, Adam 1e-3 decayed by 0.98 per epoch) is a setting where plain cross-entropy
fits most of the wrong labels by the end. Under symmetric, pair and instance noise at 30% it
trains every method (ce, eac, scn, rul, gsmc) once, and after every epoch reads the model:

- test accuracy;
- memorisation rate: the share of noisy training samples the model (eval mode, un-augmented
  image) predicts as their given, wrong, label;
- mean loss -log p(given) of clean and of noisy training samples (the EAC paper's Fig. 5);
- every detector's AUROC / AP against the known noise mask, computed from the model at that
  epoch and the signals recorded so far (`auditor.scoring.method_scores`), including the flip
  attention of every method (`auditor.training.attention`). With `--detector-every E` only every
  E-th epoch and the last are scored (the kNN and cleanlab detectors are the slow part).

It prints and writes `reports/memorisation/results.json`, the figure `docs/memorisation.png`
(memorisation rate and test accuracy per epoch, per method, per noise) and, with --readme, the
table between `<!-- memorisation-benchmark -->` markers in README.md.

    .venv/bin/python bench/memorisation.py --readme
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from readme_block import write_block  # noqa: E402  (bench/, beside this script)

from auditor.config import resolve  # noqa: E402
from auditor.datasets import load_dataset  # noqa: E402
from auditor.datasets.registry import get_entry, load_registry  # noqa: E402
from auditor.evaluation import detection_metrics  # noqa: E402
from auditor.evidence import MethodEvidence  # noqa: E402
from auditor.prepare import choose_normalizer, decode, labels_for, split_and_limit  # noqa: E402
from auditor.run import configure_threads  # noqa: E402
from auditor.scoring import method_scores  # noqa: E402
from auditor.training.attention import flip_attention  # noqa: E402
from auditor.training.engine import predict, train  # noqa: E402
from methods import METHODS  # noqa: E402
from methods.backbones import build_backbone  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASET = "demo-long"
NOISES = ("symmetric", "pair", "instance")
MARKERS = ("<!-- memorisation-benchmark -->", "<!-- /memorisation-benchmark -->")


def epoch_reader(records: list, data: dict, is_noisy: np.ndarray, detector_every: int, epochs: int):
    """The `on_epoch` hook: reads the model after each epoch into `records`."""
    given = data["labels"]
    given_t = torch.from_numpy(given)

    def read(epoch: int, method, signals: dict[str, torch.Tensor]) -> None:
        start = time.perf_counter()
        test_logits, _ = predict(method, data["test"], data["normalize"], "cpu")
        logits, pooled = predict(method, data["train"], data["normalize"], "cpu")
        log_p = torch.log_softmax(logits, dim=1)[torch.arange(len(given)), given_t].numpy()
        predicted_given = logits.argmax(dim=1).numpy() == given
        row = {
            "epoch": epoch + 1,
            "test_accuracy": float((test_logits.argmax(1) == data["test_labels"]).float().mean()),
            "memorisation": float(predicted_given[is_noisy].mean()),
            "clean_fit": float(predicted_given[~is_noisy].mean()),
            "train_accuracy_given": float(predicted_given.mean()),
            "loss_clean": float(-log_p[~is_noisy].mean()),
            "loss_noisy": float(-log_p[is_noisy].mean()),
        }
        if (epoch + 1) % detector_every == 0 or epoch + 1 == epochs:
            evidence = MethodEvidence(
                name=method.name,
                signals={k: v.cpu().numpy() for k, v in signals.items()},
                final_probs=torch.softmax(logits, dim=1).numpy(),
                embeddings=pooled.numpy(),
                flip_attention=flip_attention(
                    method, data["train"], given_t, data["normalize"], "cpu"
                ),
            )
            scores, _, _ = method_scores(evidence, given)
            row["detectors"] = {
                name[len(method.name) + 1 :]: {
                    k: detection_metrics(score, is_noisy)[k] for k in ("auroc", "ap")
                }
                for name, score in scores.items()
            }
        row["read_s"] = time.perf_counter() - start
        records.append(row)

    return read


def run_setting(
    noise: str, methods: list[str], detector_every: int, options: dict[str, object]
) -> dict:
    entry = get_entry(DATASET, load_registry())
    cli = {"noise_type": noise, "method": methods, "flip": entry.mirror_symmetric, **options}
    config = resolve(DATASET, cli, entry.defaults)
    table = load_dataset(entry, seed=config.seed)
    train_table, test_table = split_and_limit(table, config)
    train_table, test_table, (train_px, test_px), _ = decode(train_table, test_table, config)
    labels = labels_for(train_table, config, train_px)
    is_noisy = labels.given != labels.true
    normalize, _ = choose_normalizer(train_px, None)
    data = {
        "train": train_px,
        "labels": labels.given,
        "test": test_px,
        "test_labels": torch.from_numpy(test_table.labels),
        "normalize": normalize,
    }
    out = {
        "noise": noise,
        "real_rate": float(is_noisy.mean()),
        "n_train": len(is_noisy),
        "config": config.as_dict(),
        "methods": {},
    }
    for name in methods:
        torch.manual_seed(config.seed)
        backbone = build_backbone(config.backbone, train_px.shape[1])
        method = METHODS[name](backbone, table.num_classes, config.methods[name])
        records: list[dict] = []
        start = time.perf_counter()
        result = train(
            method,
            train_px,
            torch.from_numpy(labels.given),
            test_px,
            data["test_labels"],
            normalize,
            replace(config.train_config("cpu"), checkpoint=None),
            final_pass=False,
            on_epoch=epoch_reader(records, data, is_noisy, detector_every, config.epochs),
        )
        wall = time.perf_counter() - start
        out["methods"][name] = {
            "epochs": records,
            "wall_s": wall,
            "read_s": sum(r["read_s"] for r in records),
        }
        if METHODS[name].relabels:  # where the labels it trained on at the end went (SCN)
            final, changed = result.final_labels, result.final_labels != labels.given
            out["methods"][name]["relabelled"] = {
                "noisy_to_truth": int((changed & is_noisy & (final == labels.true)).sum()),
                "noisy_to_other": int((changed & is_noisy & (final != labels.true)).sum()),
                "clean_to_wrong": int((changed & ~is_noisy).sum()),
                "noisy": int(is_noisy.sum()),
            }
        last = records[-1]
        print(
            f"{noise:9s} {name:5s} peak {max(r['test_accuracy'] for r in records):.3f} "
            f"final {last['test_accuracy']:.3f} memorised {last['memorisation']:.3f} "
            f"loss clean/noisy {last['loss_clean']:.2f}/{last['loss_noisy']:.2f} "
            f"wall {wall:.0f} s {out['methods'][name].get('relabelled', '')}",
            flush=True,
        )
    return out


def summary(method: dict) -> dict:
    """Peak and final test accuracy, final memorisation, final-model loss AUROC, best detectors."""
    rows = method["epochs"]
    peak = max(rows, key=lambda r: r["test_accuracy"])
    last = rows[-1]
    dets = last["detectors"]
    best = max(dets, key=lambda d: dets[d]["ap"])
    scored = [r for r in rows if "detectors" in r]
    best_any = max(
        ((r["epoch"], d, r["detectors"][d]["ap"]) for r in scored for d in r["detectors"]),
        key=lambda t: t[2],
    )
    return {
        "peak": peak["test_accuracy"],
        "peak_epoch": peak["epoch"],
        "final": last["test_accuracy"],
        "memorisation": last["memorisation"],
        "peak_memorisation": max(r["memorisation"] for r in rows),
        "loss_clean": last["loss_clean"],
        "loss_noisy": last["loss_noisy"],
        "loss_auroc": dets["loss"]["auroc"],
        "best": best,
        "best_ap": dets[best]["ap"],
        "best_any": best_any,
        "flip_attention": dets.get("flip_attention"),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| noise | method | test acc. peak (epoch) / final | memorised: final (peak) "
        "| loss clean / noisy, final | final-model loss AUROC | best detector, final model (AP) "
        "| best detector, any epoch (AP) | flip attention AUROC, final model | wall |",
        "|" + "---|" * 10,
    ]
    for setting in results:
        for name, method in setting["methods"].items():
            s = summary(method)
            fa = s["flip_attention"]
            flip = f"{fa['auroc']:.3f}" if fa else "-"
            epoch, det, ap = s["best_any"]
            lines.append(
                f"| {setting['noise']} {setting['real_rate']:.1%} | {name} "
                f"| {s['peak']:.3f} ({s['peak_epoch']}) / {s['final']:.3f} "
                f"| {s['memorisation']:.3f} ({s['peak_memorisation']:.3f}) "
                f"| {s['loss_clean']:.2f} / {s['loss_noisy']:.2f} | {s['loss_auroc']:.3f} "
                f"| {s['best']} ({s['best_ap']:.3f}) | {det} at {epoch} ({ap:.3f}) | {flip} "
                f"| {method['wall_s']:.0f} s |"
            )
    return "\n".join(lines)


def figure(results: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 6.4), squeeze=False)
    for col, setting in enumerate(results):
        for name, method in setting["methods"].items():
            epochs = [r["epoch"] for r in method["epochs"]]
            axes[0, col].plot(epochs, [r["memorisation"] for r in method["epochs"]], label=name)
            axes[1, col].plot(epochs, [r["test_accuracy"] for r in method["epochs"]], label=name)
        axes[0, col].set(
            title=f"{setting['noise']} noise, {setting['real_rate']:.0%}",
            ylabel="noisy samples fitted to their wrong label",
            ylim=(0, 1),
        )
        axes[1, col].set(xlabel="epoch", ylabel="test accuracy")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    axes[0, 0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", nargs="+", default=list(NOISES), choices=NOISES)
    parser.add_argument("--method", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a run option of demo-long, as in datasets.yaml (epochs=20, scn_lr=0.0002)",
    )
    parser.add_argument("--detector-every", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "reports" / "memorisation"))
    parser.add_argument("--readme", action="store_true", help="write the table and figure")
    parser.add_argument("--results", help="no training: table and figure from a results.json")
    args = parser.parse_args()
    configure_threads()
    start = time.perf_counter()
    options = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.results:
        results = json.loads(Path(args.results).read_text())
    else:
        results = [run_setting(n, args.method, args.detector_every, options) for n in args.noise]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    text = table(results)
    print(text)
    print(f"total wall {time.perf_counter() - start:.0f} s")
    if args.readme:
        figure(results, REPO / "docs" / "memorisation.png")
        write_block(MARKERS, text)


if __name__ == "__main__":
    main()
