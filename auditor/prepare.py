"""The first phase of `audit run`: everything settled before any method trains, as one frozen
`Prepared`: the dataset's tables (split, --limit, undecodable images dropped), the decoded
pixels, the given labels and the truth when known (noise file, injected noise, or neither), the
validation split, the device, the --weights state dict, the input normaliser, and the run's
config settled once (working size, flips and the methods they allow), with the manifest fields
this phase owns. `auditor.run` sequences the phases.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from auditor.config import RunConfig
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
from auditor.training import distributed
from auditor.training.augment import Normalizer
from auditor.training.crossfit import check_folds
from auditor.training.engine import resolve_amp, resolve_device
from auditor.write_guard import checked_cache_dir
from methods import build_method
from methods.backbones import build_backbone
from methods.base import Method
from methods.weights import load_backbone_weights


@dataclass
class Labels:
    given: np.ndarray
    true: np.ndarray | None
    noise: dict


@dataclass(frozen=True)
class Prepared:
    """What every later phase reads: the settled config and the data it trains on."""

    config: RunConfig  # settled: working size, flips, the methods they allow
    entry: DatasetEntry
    train_table: SampleTable
    test_table: SampleTable
    pixels: tuple[Pixels, Pixels]  # uint8 [N, C, S, S] of the training and test samples
    labels: Labels
    held_out: np.ndarray | None  # the validation split (rows of train_table), when one is held
    device: str
    weights: dict | None  # the --weights backbone state dict, reused by every model
    normalize: Normalizer
    manifest: dict  # the manifest fields this phase owns (all but the command)
    probe_seconds: float  # how long the mirror probe trained (0 when it did not)

    @property
    def split(self) -> str | None:
        """What accuracy is read on: "test", "validation" (the held-out split), or None."""
        if len(self.test_table):
            return "test"
        return "validation" if self.held_out is not None else None

    def new_model(self, name: str, seed: int, classes: int | None = None) -> Method:
        """A new model of method `name` (of `classes` outputs, default the dataset's): its
        backbone initialised from `seed` alone, then given the --weights state dict."""
        return make_method(
            name,
            self.config,
            classes or self.train_table.num_classes,
            self.train_table.channels,
            self.weights,
            seed,
        )


def prepare(config: RunConfig, entry: DatasetEntry, resumed: bool) -> Prepared:
    """Load, split, decode and label the dataset of `entry`, and settle `config` (a `resumed`
    run keeps its recorded working size). Refuses, before any run folder exists, what cannot
    train: too few samples, too few per class for --folds, a label source contradiction, a
    cache folder the write guard forbids."""
    checked_cache_dir()
    table = load_dataset(entry, root=config.root, noise_file=config.noise_file, seed=config.seed)
    labels_info = None
    if config.labels:
        table, labels_info = with_labels(table, Path(config.labels), entry.kind)
    train_table, test_table = split_and_limit(table, config)
    if not resumed:
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
        config,
        pixels[0],
        labels.given,
        held_out,
        normalize,
        device,
    )
    config, mirror = decide_flip(config, entry, probe, table.num_classes)
    manifest = {
        "dataset": entry.name,
        "dataset_kind": entry.kind,
        "dataset_fingerprint": table.fingerprint(),
        "config": config.as_dict(),
        "device": device,
        "seed": config.seed,
        "noise": labels.noise,
        "precision": "bf16 autocast" if resolve_amp(config.amp, device) else "float32",
        "n_train": len(train_table),
        "n_test": len(test_table),
        "class_names": table.class_names,
        "dataset_notes": table.extra,
        "skipped": skipped,
        "labels_file": labels_info,
        "weights": weights_info,
        "normalisation": normalisation,
        "processes": distributed.world_size(),
        "validation": validation_record(train_table, held_out, config),
        "mirror_symmetry": mirror.as_dict(),
    }
    return Prepared(
        config,
        entry,
        train_table,
        test_table,
        pixels,
        labels,
        held_out,
        device,
        weights,
        normalize,
        manifest,
        probe.seconds,
    )


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
        skipped += [
            {
                "sample_id": str(table.sample_ids[i]),
                "filepath": str(table.filepaths[i]),
                "split": str(table.split[i]),
                "reason": reason,
            }
            for i, reason in failures.items()
        ]
        keep = np.setdiff1d(np.arange(len(table)), np.fromiter(failures, dtype=np.int64))
        tables.append(table.select(keep) if failures else table)
        pixels.append(take(px, keep) if failures else px)
    if len(tables[0]) < 2:
        raise UserError(f"fewer than 2 training images could be decoded ({len(skipped)} failed)")
    if skipped:
        listing = "; ".join(f"{s['filepath']}: {s['reason']}" for s in skipped[:5])
        if config.strict:
            raise UserError(f"{len(skipped)} images cannot be decoded (--strict): {listing}")
        print(
            f"audit: skipped {len(skipped)} undecodable images ({listing}); listed in "
            "manifest.json",
            file=sys.stderr,
        )
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
    return weights, {
        "source": config.weights,
        "matched": report.matched,
        "expected": report.expected,
        "ignored": report.unused,
    }


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
        print(
            f"audit: warning: --preset paper without --weights trains {config.backbone} from "
            "scratch; the papers' numbers need a face-pretrained backbone (the MS-Celeb-1M "
            "ResNet-18: --weights PATH)",
            file=sys.stderr,
        )
