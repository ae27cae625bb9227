"""One `audit run`: load, inject noise, train every method, score, evaluate, write the run folder.

The run folder's `manifest.json` says `running` from the start and `complete` only once every
other file has been written; a failed run is marked `failed` with the error.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from auditor import memorisation
from auditor.config import RunConfig, part_keys
from auditor.data_choices import (
    MirrorProbe,
    decide_flip,
    hold_out,
    validation_record,
    working_size,
)
from auditor.datasets import load_dataset
from auditor.datasets.cache import load_pixels
from auditor.datasets.corrected import with_labels
from auditor.datasets.noise import NOISE_MODELS, inject_noise
from auditor.datasets.pixel_map import Pixels, in_memory, take
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import SampleTable, refuse_unusable, stratified_subset
from auditor.errors import UserError
from auditor.evaluation import accuracy_protocols, evaluate_detectors
from auditor.evidence import MethodEvidence
from auditor.model_outputs import best_trusted, write_report_for, write_review_files
from auditor.options import SettingError
from auditor.outputs.run_folder import RunState, write_run_files
from auditor.outputs.tables import dynamics_table, relabel_events_table
from auditor.resume import Resume, refuse_changed_data
from auditor.scoring import score_all
from auditor.training import distributed
from auditor.training.augment import Normalizer
from auditor.training.aum_threshold import aum_threshold_run
from auditor.training.crossfit import check_folds, cross_fit
from auditor.training.engine import resolve_amp, resolve_device, train
from auditor.training.length import MIN_EPOCHS, length_reason
from methods import build_method
from methods.backbones import build_backbone
from methods.base import Method
from methods.weights import load_backbone_weights


@dataclass
class Labels:
    given: np.ndarray
    true: np.ndarray | None
    noise: dict


def split_and_limit(table: SampleTable, config: RunConfig) -> tuple[SampleTable, SampleTable]:
    train_idx = np.flatnonzero(table.split == "train")
    test_idx = np.flatnonzero(table.split == "test")
    if len(train_idx) < 2:
        raise UserError(
            f"dataset {table.name!r} has {len(train_idx)} training samples; need at least 2"
        )
    if config.limit is not None:
        train_idx = train_idx[
            stratified_subset(table.labels[train_idx], config.limit, seed=config.seed)
        ]
    return table.select(train_idx), table.select(test_idx)


def decode(
    train: SampleTable, test: SampleTable, config: RunConfig
) -> tuple[SampleTable, SampleTable, tuple[Pixels, Pixels], list[dict]]:
    """Decode both splits into the tensor cache. Images that cannot be decoded are dropped and
    listed (sample, file, reason) for the manifest; with `--strict` any of them is an error."""
    tables, pixels, skipped = [], [], []
    for table in (train, test):
        px, failures = load_pixels(table, config.image_size, config.workers, config.image_cache)
        skipped += [{"sample_id": str(table.sample_ids[i]), "filepath": str(table.filepaths[i]),
                     "split": str(table.split[i]), "reason": reason} for i, reason in failures.items()]  # fmt: skip
        keep = np.setdiff1d(np.arange(len(table)), np.fromiter(failures, dtype=np.int64))
        tables.append(table.select(keep) if failures else table)
        pixels.append(take(px, keep) if failures else px)
    if len(tables[0]) < 2:
        raise UserError(f"fewer than 2 training images could be decoded ({len(skipped)} failed)")
    if skipped:
        listing = "; ".join(f"{s['filepath']}: {s['reason']}" for s in skipped[:5])
        if config.strict:
            raise UserError(f"{len(skipped)} images cannot be decoded (--strict): {listing}")
        print(f"audit: skipped {len(skipped)} undecodable images ({listing}); listed in manifest.json",
              file=sys.stderr)  # fmt: skip
    return tables[0], tables[1], (pixels[0], pixels[1]), skipped


def labels_for(train: SampleTable, config: RunConfig, pixels: Pixels) -> Labels:
    """The given labels and, when known, the truth: from a noise file, from injected noise, or
    neither (the dataset's labels as they are, truth unknown). Instance-dependent noise reads
    the training images (`pixels`, uint8 [N, C, S, S]); the matrix models (human-fer, matrix)
    read the class names and add the matrix they used to the manifest's `noise` entry."""
    if train.true_labels is not None:
        if config.noise_rate > 0:
            raise UserError(
                f"{train.name} already carries labels with a known truth; drop --noise-rate "
                "(injecting noise on top would hide the real noise)"
            )
        mask = train.labels != train.true_labels
        noise = {
            "type": train.truth_source,
            "file": config.noise_file,
            "nominal_rate": None,
            "real_rate": float(mask.mean()),
            "seed": None,
        }
        return Labels(train.labels, train.true_labels, noise)
    if config.noise_rate > 0:
        options = asdict(config.noise_models[config.noise_type])
        reads_features = NOISE_MODELS[config.noise_type].reads_features
        noisy = inject_noise(
            train.labels,
            train.num_classes,
            kind=config.noise_type,
            rate=config.noise_rate,
            seed=config.seed,
            features=in_memory(pixels).flatten(1).numpy() if reads_features else None,
            class_names=train.class_names,
            **options,
        )
        noise = {
            "type": config.noise_type,
            **options,
            "nominal_rate": config.noise_rate,
            "real_rate": noisy.real_rate,
            "seed": config.seed,
            **noisy.details,
        }
        return Labels(noisy.given, noisy.true, noise)
    noise = {"type": "none", "nominal_rate": 0.0, "real_rate": None, "seed": None}
    return Labels(train.labels.copy(), None, noise)


def make_method(
    name: str, config: RunConfig, classes: int, in_channels: int, weights: dict | None, seed: int
) -> Method:
    """A new model of method `name`: its backbone initialised from `seed` alone, then given
    the --weights state dict `weights` when there is one."""
    torch.manual_seed(seed)
    backbone = build_backbone(config.backbone, in_channels)
    if weights is not None:
        backbone.load_state_dict(weights)
    return build_method(name, backbone, classes, **asdict(config.methods[name]))


def train_method(
    name: str,
    config: RunConfig,
    num_classes: int,
    in_channels: int,
    data: dict,
    device: str,
    checkpoints: Path,
) -> tuple[MethodEvidence, float, Method]:
    """(the evidence of method `name`'s training, with its cross-fitted probabilities and AUM
    threshold runs when asked for; its seconds; its model after training)."""

    def make(seed: int, classes: int = num_classes) -> Method:
        return make_method(name, config, classes, in_channels, data["weights"], seed)

    if distributed.rank() == 0:  # the other nodes may not see the run folder
        checkpoints.mkdir(exist_ok=True)
    train_config = replace(config.train_config(device), checkpoint=str(checkpoints / f"{name}.pt"))
    if train_config.until_plateau and data["test"] is None and data["held_out"] is None:
        train_config = replace(train_config, epochs=MIN_EPOCHS, until_plateau=False)  # no accuracy
    n = len(data["labels"])
    trained = n - (0 if data["held_out"] is None else len(data["held_out"]))
    # K fold models each see (K - 1) / K of the data; AUM threshold runs are two more trainings
    others = n * (config.folds - 1 + (2 if config.aum_threshold else 0))
    total = train_config.epochs * (trained + others)  # the most, without --epochs
    start = time.perf_counter()
    with tqdm(
        total=total,
        desc=name,
        unit="img",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None if distributed.rank() == 0 else True,
        mininterval=1.0,
    ) as bar:

        def tick(k: int, _total: int) -> None:
            bar.update(k)

        model = make(config.seed)
        evidence = train(
            model,
            data["train"],
            torch.from_numpy(data["labels"]),
            data["test"],
            data["test_labels"],
            data["normalize"],
            train_config,
            progress=tick,
            held_out=data["held_out"],
        )
        # the folds and AUM's threshold runs train as long as the model they stand beside
        epochs = len(evidence.signals["loss"])
        train_config = replace(train_config, epochs=epochs, until_plateau=False)
        bar.total = epochs * (trained + others)
        bar.refresh()
        if config.folds >= 2:
            oos = cross_fit(make, data["train"], data["labels"], data["normalize"], train_config,
                            config.folds, progress=tick)  # fmt: skip
            evidence = replace(evidence, oos_probs=oos)
        if config.aum_threshold:
            aum_runs = aum_threshold_run(make, data["train"], data["labels"], num_classes,
                                         data["normalize"], train_config, progress=tick)  # fmt: skip
            evidence = replace(evidence, aum_runs=aum_runs)
    check_converged(evidence, config)
    return evidence, time.perf_counter() - start, model


def check_converged(evidence: MethodEvidence, config: RunConfig) -> None:
    """Refuse a training whose model diverged: NaN or infinite probabilities or embeddings
    (from values within their declared bounds that still overflow the loss: a high rate, a
    heavy loss weight, a checkpoint of huge weights) would be scored as if they meant
    something. The message names the rate, the method's numeric options and the weights."""
    outputs = {"probabilities": evidence.final_probs, "cross-fitted probabilities":
               evidence.oos_probs, "embeddings": evidence.embeddings}  # fmt: skip
    for what, values in outputs.items():
        if values is not None and not np.isfinite(values).all():
            own = [f"--{key.replace('_', '-')} {value:g}"
                   for key, (group, part, _, value) in part_keys(config).items()
                   if (group, part) == ("methods", evidence.name) and isinstance(value, float)]  # fmt: skip
            weights = [f"--weights {config.weights}"] if config.weights else []
            raise SettingError(
                f"{evidence.name}: training diverged, its {what} are NaN or infinite. Its "
                f"settings: {', '.join([f'--lr {config.lr:g}', *own, *weights])}: lower the "
                "rate or the loss weights (or give other weights) and start a new run; --resume "
                "keeps a run's settings and would diverge again"
            )


def execute(
    config: RunConfig,
    entry: DatasetEntry,
    argv: list[str],
    resume: Resume | None = None,
) -> tuple[Path, dict]:
    """Run the whole audit; returns (run folder, metrics). With `resume` (an unfinished run,
    `auditor.resume.resume_request`), continue that run in its folder: trainings already
    finished are loaded from their checkpoints, an interrupted one goes on from its last
    finished epoch."""
    t0 = time.perf_counter()
    table = load_dataset(entry, root=config.root, noise_file=config.noise_file, seed=config.seed)
    labels_info = None
    if config.labels:
        table, labels_info = with_labels(table, Path(config.labels), entry.kind)
    train_table, test_table = split_and_limit(table, config)
    if resume is None:
        config = working_size(config, train_table, entry)
    train_table, test_table, pixels, skipped = decode(train_table, test_table, config)
    refuse_unusable(train_table, f"dataset {entry.name!r} after --limit and undecodable images")
    labels = labels_for(train_table, config, pixels[0])
    check_folds(labels.given, config.folds)  # before any training, and before the run folder
    held_out = hold_out(labels.given, config, has_test=len(test_table) > 0)
    device = resolve_device(config.device)
    weights, weights_info = backbone_weights(config, table.channels)
    warn_if_from_scratch(config)
    normalize, normalisation = choose_normalizer(pixels[0], config.weights)
    probe = MirrorProbe(
        lambda seed: make_method("ce", config, table.num_classes, table.channels, weights, seed),
        config, pixels[0], labels.given, held_out, normalize, device,
    )  # fmt: skip
    config, mirror = decide_flip(config, entry, probe, table.num_classes)
    if distributed.rank() != 0:
        state = RunState.follower(Path(str(distributed.broadcast_object(None))))
    elif resume is not None:
        validation = validation_record(train_table, held_out, config)
        refuse_changed_data(resume.manifest, entry.name, table.fingerprint(), validation)
        state = RunState.resume(resume.run_dir, resume.manifest)
    else:
        state = RunState.start(Path(config.out), entry.name, config.method, {
            "command": argv, "dataset": entry.name, "dataset_kind": entry.kind,
            "dataset_fingerprint": table.fingerprint(), "config": config.as_dict(),
            "device": device, "seed": config.seed, "noise": labels.noise,
            "precision": "bf16 autocast" if resolve_amp(config.amp, device) else "float32",
            "n_train": len(train_table), "n_test": len(test_table),
            "class_names": table.class_names,
            "dataset_notes": table.extra,
            "skipped": skipped, "labels_file": labels_info, "weights": weights_info,
            "normalisation": normalisation, "processes": distributed.world_size(),
            "validation": validation_record(train_table, held_out, config),
            "mirror_symmetry": mirror.as_dict(),
        })  # fmt: skip
    if distributed.rank() == 0:
        distributed.broadcast_object(str(state.run_dir))
    if probe.seconds:  # a resumed run keeps the probe time it recorded
        state.timings["mirror_probe"] = probe.seconds
    state.timings["load_and_decode"] = time.perf_counter() - t0 - probe.seconds
    with state.recording(t0):
        metrics = audit(config, train_table, test_table, pixels, labels, held_out, device, weights,
                        normalize, state)  # fmt: skip
    return state.run_dir, metrics


def audit(
    config: RunConfig,
    train_table: SampleTable,
    test_table: SampleTable,
    both: tuple[Pixels, Pixels],
    labels: Labels,
    held_out: np.ndarray | None,
    device: str,
    weights: dict | None,
    normalize: Normalizer,
    state: RunState,
) -> dict:
    data = {
        "train": both[0],
        "labels": labels.given,
        "test": both[1] if len(test_table) else None,
        "test_labels": torch.from_numpy(test_table.labels),
        "held_out": held_out,
        "normalize": normalize,
        "weights": weights,
    }
    split = "test" if len(test_table) else "validation" if held_out is not None else None

    evidence, accuracy, models, lengths = [], {}, {}, {}
    for name in config.method:
        ev, seconds, models[name] = train_method(
            name, config, train_table.num_classes, both[0].shape[1], data, device, state.checkpoints
        )
        evidence.append(ev)
        accuracy[name] = accuracy_protocols(ev.epoch_accuracy)
        if config.epochs is None:
            lengths[name] = length_reason(ev.epoch_accuracy, len(ev.signals["loss"]), split)
            if state.primary:
                print(f"audit: {name}: trained {lengths[name]}", file=sys.stderr)
        state.timings[f"train_{name}"] = seconds
        state.save("running")
    if not state.primary:
        return {}  # torchrun processes other than 0 only train

    t = time.perf_counter()
    last5 = {m: a["last5_mean"] for m, a in accuracy.items()}
    is_noisy = None if labels.true is None else labels.given != labels.true
    scores = score_all(evidence, labels.given, last5, held_out, split)
    state.timings["score"] = time.perf_counter() - t
    state.manifest["ensemble_decisions"] = scores.decisions
    print("audit: " + "\naudit: ".join(scores.decisions), file=sys.stderr)
    metrics = {
        "accuracy": accuracy,
        "accuracy_split": split,
        "training_length": lengths,  # without --epochs: method -> why it trained that long
        "detectors": evaluate_detectors(scores.scores, scores.flags, labels.given, labels.true),
        "noise": labels.noise,
        "ensemble": {
            "members": scores.ensemble_members,
            "flagged": int(scores.flags["suspicion"].sum()),
            "decisions": scores.decisions,
            "early_learning": scores.early_learning,
            "flag_estimates": scores.flag_estimates,
        },
        "rank_identical": scores.rank_identical,
        "memorisation": {
            ev.name: memorisation.curves(
                ev.signals["correct"],
                ev.signals["loss"],
                accuracy[ev.name]["per_epoch"],
                is_noisy,
                split,
                held_out,
            )
            for ev in evidence
        },  # fmt: skip
    }
    if scores.aum_thresholds:
        metrics["aum_thresholds"] = scores.aum_thresholds
    samples = write_run_files(
        state.run_dir,
        sample_ids=train_table.sample_ids,
        filepaths=train_table.filepaths,
        class_names=train_table.class_names,
        given=labels.given,
        true=labels.true,
        scores=scores,
        metrics=metrics,
        dynamics=dynamics_table(train_table.sample_ids, {ev.name: ev.signals for ev in evidence}),
        events=relabel_events_table(
            train_table.sample_ids, {ev.name: ev.relabel_events for ev in evidence if ev.relabels}
        ),
    )
    best = best_trusted(last5)
    chosen = next(ev for ev in evidence if ev.name == best)
    write_review_files(samples, chosen.embeddings, models[best], both[0], normalize, device, state)
    if config.report:
        write_report_for(config, metrics, samples, evidence, chosen, models[best], both[0],
                         normalize, device, state)  # fmt: skip
    return metrics


def backbone_weights(config: RunConfig, in_channels: int) -> tuple[dict | None, dict | None]:
    """(the backbone state dict from --weights, checked once and reused by every model; what
    matched, for the manifest), or (None, None) without --weights."""
    if config.weights is None:
        return None, None
    backbone = build_backbone(config.backbone, in_channels)
    weights, report = load_backbone_weights(
        config.weights, backbone, config.backbone, allow_partial=config.allow_partial_weights
    )
    print(report.summary(), file=sys.stderr)
    return weights, {"source": config.weights, "matched": report.matched,
                     "expected": report.expected, "ignored": report.unused}  # fmt: skip


def choose_normalizer(pixels: Pixels, weights: str | None) -> tuple[Normalizer, dict]:
    """(the normaliser of every model's input, its entry for the manifest): ImageNet's mean and
    std with --weights (the statistics a pre-trained backbone expects), else the per-channel
    mean and std of the training images `pixels` (uint8 [N, C, H, W])."""
    if weights is not None:
        normalize, source = Normalizer.imagenet(pixels.shape[1]), "imagenet"
    else:
        normalize, source = Normalizer.fit(pixels), "training images"
    return normalize, {"source": source, "mean": list(normalize.mean), "std": list(normalize.std)}


def warn_if_from_scratch(config: RunConfig) -> None:
    """One warning on stderr (process 0 only) when --preset paper trains without --weights."""
    if config.preset == "paper" and config.weights is None and distributed.rank() == 0:
        print(f"audit: warning: --preset paper without --weights trains {config.backbone} from "
              "scratch; the papers' numbers need a face-pretrained backbone (the MS-Celeb-1M "
              "ResNet-18: --weights PATH)", file=sys.stderr)  # fmt: skip


def configure_threads() -> None:
    """Use every core for intra-op parallelism unless the user set OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)
