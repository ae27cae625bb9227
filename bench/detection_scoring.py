"""The detection benchmark's scoring (bench/detection.py collects): a collected cell's evidence
read back (`load_evidence`), scored with the tool's own `auditor.scoring.score_all` as
`audit run` scores it (`score_cell`), its seeds pooled (`over_seeds`), the floors judged on
their means (`floors_met`) and the README's table (`table`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from auditor.detectors.probabilities import cleanlab_detector, normalized_margin
from auditor.evaluation import accuracy_protocols, detection_metrics
from auditor.evidence import MethodEvidence
from auditor.scoring import score_all
from auditor.training.frozen import FROZEN, trust_accuracy


def load_evidence(folder: Path) -> tuple[list[MethodEvidence], dict, np.ndarray, np.ndarray, dict]:
    """(evidence per method without the cross-fit, {method: test accuracy protocols}, given,
    true, info) of a collected cell; CE's cross-fitted probabilities (when collected) are in
    `info["oos_probs"]`, the pre-trained baselines' scores in `info["baselines"]`."""
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
        evidence.append(
            MethodEvidence(
                name=name,
                signals={k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)},
                final_probs=arrays[f"{name}/final_probs"],
                embeddings=arrays[f"{name}/embeddings"],
                final_labels=arrays.get(f"{name}/final_labels"),
                flip_attention=arrays.get(f"{name}/flip_attention"),
                best_probs=arrays[f"{name}/best_probs"],
                best_epoch=method["best_epoch"],
                epoch_probs=arrays.get(f"{name}/view_probs"),
                epoch_accuracy=method["test_accuracy"],
            )
        )
    accuracy = {m: accuracy_protocols(v["test_accuracy"]) for m, v in info["methods"].items()}
    if "frozen" in info:  # the pre-trained cells: what `audit run --weights` scores beside them
        frozen = arrays[f"{FROZEN}/final_probs"]
        evidence.append(
            MethodEvidence(
                name=FROZEN,
                signals={},
                final_probs=frozen,
                oos_probs=frozen,
                embeddings=arrays[f"{FROZEN}/embeddings"],
                epoch_accuracy=info["frozen"]["test_accuracy"],
            )
        )
        accuracy[FROZEN] = accuracy_protocols(info["frozen"]["test_accuracy"])
        arrays["baseline/frozen_logreg"] = normalized_margin(frozen, arrays["given"])
    info["oos_probs"] = arrays.get("ce/oos_probs")
    info["baselines"] = {
        k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("baseline/")
    }
    return evidence, accuracy, arrays["given"], arrays["true"], info


def score_cell(folder: Path) -> dict:
    evidence, accuracy, given, true, info = load_evidence(folder)
    is_noisy = given != true
    last5 = {m: a["last5_mean"] for m, a in accuracy.items()}
    if FROZEN in last5:  # as `audit run --weights` reads it (auditor.run_scoring)
        trained = {m: a for m, a in last5.items() if m != FROZEN}
        last5[FROZEN] = trust_accuracy(last5[FROZEN], trained)
    scores = score_all(evidence, given, last5)
    metrics = {n: detection_metrics(s, is_noisy) for n, s in scores.scores.items()}
    best = max((n for n in metrics if n != "suspicion"), key=lambda n: metrics[n]["ap"])
    baselines = {k: detection_metrics(v, is_noisy)["ap"] for k, v in info["baselines"].items()}
    if info["oos_probs"] is not None:
        base_score, _ = cleanlab_detector(info["oos_probs"], given)
        baselines["crossfit"] = detection_metrics(base_score, is_noisy)["ap"]
    flagged = detection_metrics(scores.scores["suspicion"], is_noisy, scores.flags["suspicion"])
    p, r, f1 = (flagged[k] for k in ("precision", "recall", "f1"))
    images = sum(m["images"] for m in info["methods"].values())
    wall = sum(m["wall_s"] for m in info["methods"].values())
    return {
        "cell": folder.parent.name,
        "seed": int(folder.name.removeprefix("seed-")),
        "real_rate": info["real_rate"],
        "n_train": info["n_train"],
        "suspicion": metrics["suspicion"],
        "best": best,
        "best_ap": metrics[best]["ap"],
        "baselines": baselines,
        "flags": (p, r, f1),
        "flagged": int(scores.flags["suspicion"].sum()),
        "noisy": int(is_noisy.sum()),
        "members": scores.ensemble_members,
        "images": images,
        "wall": wall,
        "accuracy": {m: a["last5_mean"] for m, a in accuracy.items()},
        "decisions": scores.decisions,
    }


def over_seeds(rows: list[dict]) -> dict:
    """One cell's row from its seeds' rows: every figure the mean over the seeds, with its
    (min, max) under `range` (suspicion AP, best AP, baselines, flags' recall and F1), the best
    single detector the one most often best, the ensemble's members every distinct set chosen,
    `seeds_met` how many seeds meet the floors on their own."""

    def mean(values) -> float:
        return float(np.mean(values))

    def spread(values) -> tuple[float, float]:
        return float(np.min(values)), float(np.max(values))

    aps = [r["suspicion"]["ap"] for r in rows]
    best_aps = [r["best_ap"] for r in rows]
    flags = np.array([r["flags"] for r in rows])
    bests = [r["best"] for r in rows]
    baseline_names = rows[0]["baselines"]
    return rows[0] | {
        "seeds": [r["seed"] for r in rows],
        "real_rate": mean([r["real_rate"] for r in rows]),
        "suspicion": {
            "ap": mean(aps),
            "auroc": mean([r["suspicion"]["auroc"] for r in rows]),
        },
        "best": max(dict.fromkeys(bests), key=bests.count),
        "best_ap": mean(best_aps),
        "baselines": {
            k: mean([r["baselines"][k] for r in rows if k in r["baselines"]])
            for k in baseline_names
        },
        "flags": tuple(float(v) for v in flags.mean(axis=0)),
        "flagged": mean([r["flagged"] for r in rows]),
        "noisy": mean([r["noisy"] for r in rows]),
        "members": list(dict.fromkeys(" + ".join(r["members"]) for r in rows)),
        "images": sum(r["images"] for r in rows),
        "wall": sum(r["wall"] for r in rows),
        "seeds_met": sum(floors_met(r) for r in rows),
        "range": {
            "ap": spread(aps),
            "best_ap": spread(best_aps),
            "recall": spread(flags[:, 1]),
            "f1": spread(flags[:, 2]),
        },
    }


def floors_met(row: dict) -> bool:
    """The issue's floors, on the means over the seeds: suspicion AP >= every baseline's and the
    best single detector's minus 0.01; the flags' recall >= 0.70 where AP >= 0.8, F1 >= 0.85
    where AP >= 0.9."""
    ap, (_, recall, f1) = row["suspicion"]["ap"], row["flags"]
    reached = all(ap >= b - 0.01 for b in [row["best_ap"], *row["baselines"].values()])
    return reached and (ap < 0.8 or recall >= 0.70) and (ap < 0.9 or f1 >= 0.85)


def with_range(value: float, row: dict, key: str, digits: int = 3) -> str:
    """`value` and, over several seeds, its range: 0.943 (0.931-0.950)."""
    text = f"{value:.{digits}f}"
    if len(row["seeds"]) > 1:
        low, high = row["range"][key]
        text += f" ({low:.{digits}f}-{high:.{digits}f})"
    return text


def table(rows: list[dict]) -> str:
    """The README's table: one row per cell, means over its seeds (ranges in brackets)."""
    lines = [
        "| cell | seeds | real rate | suspicion AP / AUROC | best single detector (AP) "
        "| baselines (AP) | floors met (seeds) | flags P / R / F1 (flagged / noisy) "
        "| ensemble members | trained images, wall |",
        "|" + "---|" * 10,
    ]
    names = {
        "crossfit": "cleanlab 4-fold",
        "pretrained_probs": "pre-trained model",
        "frozen_logreg": "frozen features + logreg",
    }
    for r in rows:
        s, (p, rec, f1) = r["suspicion"], r["flags"]
        base = ", ".join(f"{names[k]} {v:.3f}" for k, v in r["baselines"].items()) or "-"
        lines.append(
            f"| {r['cell']} | {len(r['seeds'])} | {r['real_rate']:.3f} "
            f"| {with_range(s['ap'], r, 'ap')} / {s['auroc']:.3f} "
            f"| {r['best']} ({with_range(r['best_ap'], r, 'best_ap')}) | {base} "
            f"| {'yes' if floors_met(r) else 'no'} ({r['seeds_met']} of {len(r['seeds'])}) "
            f"| {p:.2f} / {with_range(rec, r, 'recall', 2)} / {with_range(f1, r, 'f1', 2)} "
            f"({r['flagged']:.0f} / {r['noisy']:.0f}) "
            f"| {'; '.join(r['members'])} | {r['images']:,}, {r['wall']:.0f} s |"
        )
    return "\n".join(lines)
