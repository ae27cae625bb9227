"""What `audit run` decides for itself from the data, before the run folder exists, when the
user did not decide it: the working size, a validation split, and whether to train with flips.
Each decision is printed in one sentence and recorded in the manifest; a resumed run keeps the
recorded ones (`RunConfig.explicit` then holds every key).

- Working size: the dataset's default `--image-size`, or the images' own size when they are
  smaller (`auditor.datasets.image_size.own_image_size`): upscaling 28 px images to 64 px costs
  about five times the compute and adds nothing the images do not hold.
- Validation split: a dataset without a test split gives every rule that reads accuracy (the
  trusted methods, the epoch of best accuracy, the memorisation verdict, the mirror probe)
  nothing to read. `validation_split` holds out `--validation` of the training samples,
  stratified by given label and seeded; they are not trained on, and are audited from the
  model that did not train on them (`auditor.training.engine.train`, `held_out`). Their labels
  are the given ones, noisy: accuracy on them is
      acc_given = acc_true * (1 - r) + (1 - acc_true) * r'      (r: noise rate; r' <= r: the share
  of wrong labels that name the class the model predicts), increasing in acc_true whenever
  r < (K - 1) / K, so it ranks models and epochs as the true accuracy does, compressed.
- Flips: `--flip/--no-flip`, else the dataset's declaration in datasets.yaml, else measured by
  `MirrorProbe` on the held-out split (`auditor.symmetry`), else none.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from auditor.config import RunConfig
from auditor.datasets.image_size import own_image_size
from auditor.datasets.pixel_map import Pixels, take
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import SampleTable, stratified_subset
from auditor.symmetry import MirrorDecision, decide_mirror, methods_for_mirror, mirror_accuracy
from auditor.training import distributed
from auditor.training.augment import Normalizer
from auditor.training.engine import train
from methods.base import Method

# Epochs of the mirror probe (plain CE without flips): enough for a model to classify clearly
# above chance, whose accuracy on mirrored images is what is measured.
PROBE_EPOCHS = 3
# Training samples the probe trains on at most (class-stratified): on a large folder it costs
# 3 epochs of this many images, not 3/10 of a full CE training.
PROBE_TRAINING = 10_000


def say(text: str) -> None:
    """One line on stderr, from process 0 only."""
    if distributed.rank() == 0:
        print(f"audit: {text}", file=sys.stderr)


def working_size(config: RunConfig, table: SampleTable, entry: DatasetEntry) -> RunConfig:
    """`config` with `image_size` lowered to the images' own size (at least 8 px, the option's
    bound) when they are smaller and the user did not set `--image-size`."""
    if "image_size" in config.explicit:
        return config
    own = own_image_size(table)
    if own is None or own >= config.image_size:
        return config
    size = max(own, 8)  # the option's lower bound
    own_words = "the images' own" if size == own else f"the smallest (the images are {own} px)"
    say(
        f"working size {size} px, {own_words}, not the default {config.image_size} px "
        "(--image-size sets it)"
    )
    return replace(config, image_size=size)


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the held-out samples: for each given class c of n_c samples,
    min(floor(fraction * n_c), n_c - 1) of them drawn without replacement by a generator seeded
    with `seed` (never more than `fraction` of a class; every class keeps a sample to train on)."""
    rng = np.random.default_rng([seed, 1])
    chosen = [np.zeros(0, dtype=np.int64)]
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(int(np.floor(fraction * len(members))), len(members) - 1)
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


def hold_out(labels: np.ndarray, config: RunConfig, has_test: bool) -> np.ndarray | None:
    """The validation split of a run (`validation_split`, said in one sentence), or None: with
    a test split, with --validation 0, or when no class is large enough to give a sample."""
    if has_test or config.validation == 0:
        return None
    held = validation_split(labels, config.validation, config.seed)
    if len(held) == 0:
        say(
            f"no validation split: --validation {config.validation:g} of the smallest classes "
            "rounds to no sample; the rules that read accuracy have none to read"
        )
        return None
    say(
        f"no test split: holds out {len(held)} of the {len(labels)} training samples as a "
        f"validation split (--validation {config.validation:g}, stratified by given label), "
        "never trained on, still audited"
    )
    return held


def validation_record(
    table: SampleTable, held_out: np.ndarray | None, config: RunConfig
) -> dict | None:
    """The manifest's `validation`: which samples were held out and how; None when the run
    reads a test split (or --validation 0)."""
    if held_out is None:
        return None
    return {
        "fraction": config.validation,
        "n": int(len(held_out)),
        "stratified_by": "given label",
        "seed": config.seed,
        "sample_ids": [str(i) for i in table.sample_ids[held_out]],
    }


@dataclass
class MirrorProbe:
    """A short training of plain CE without flips (`PROBE_EPOCHS`, the run's backbone, weights
    and seed) on the training samples, read on held-out training samples (their given labels):
    the run's validation split, or, for a dataset with a test split, a split of the same rule
    held out for the probe alone (a choice about training never reads the test split)."""

    make: Callable[[int], Method]  # a new plain CE model from a seed
    config: RunConfig
    pixels: Pixels  # uint8 [N, C, H, W], the training samples
    given: np.ndarray  # [N] their given labels
    held_out: np.ndarray | None  # the run's validation split
    normalize: Normalizer
    device: str
    seconds: float = 0.0  # how long `measure` took

    def split(self) -> np.ndarray:
        if self.held_out is not None:
            return self.held_out
        return validation_split(self.given, max(self.config.validation, 0.1), self.config.seed)

    def measure(self) -> tuple[float, float] | None:
        """(balanced accuracy on the held-out images, on their mirror images), or None when no
        class is large enough to hold one out. Measured by process 0, sent to every process (a
        decision taken apart could differ and part the processes' trainings)."""
        start = time.perf_counter()
        held = self.split()
        measured = None
        if len(held):
            rest = np.setdiff1d(np.arange(len(self.given)), held)
            if len(rest) > PROBE_TRAINING:
                rest = rest[
                    stratified_subset(self.given[rest], PROBE_TRAINING, seed=self.config.seed)
                ]
            rows = np.concatenate([rest, held])  # the probe's own samples: trained, then held out
            epochs = min(PROBE_EPOCHS, self.config.epochs or PROBE_EPOCHS)
            say(
                f"measuring mirror symmetry: {epochs} epochs of ce without flips on {len(rest)} "
                f"training images, read on {len(held)} held-out ones"
            )
            settings = replace(self.config, flip=False, epochs=epochs).train_config(self.device)
            model = self.make(self.config.seed)
            train(
                model,
                take(self.pixels, rows),
                torch.from_numpy(self.given[rows]),
                None,
                None,
                self.normalize,
                settings,
                final_pass=False,
                held_out=np.arange(len(rest), len(rows)),
            )
            measured = mirror_accuracy(
                model,
                take(self.pixels, held),
                self.given[held],
                self.normalize,
                self.device,
                amp=settings.amp,
            )
        self.seconds = time.perf_counter() - start
        return distributed.broadcast_object(measured)


def decide_flip(
    config: RunConfig, entry: DatasetEntry, probe: MirrorProbe, num_classes: int
) -> tuple[RunConfig, MirrorDecision]:
    """(`config` with `flip` decided and without the methods that need a mirror symmetry the
    data lacks, the decision). `--flip/--no-flip` (or a resumed run's record) first, then the
    registry's `mirror_symmetric` (or a `flip` in the dataset's `defaults`), then `probe`'s
    measurement; without any of them, no flips. Refuses a method the user named (`--method
    eac`) that the decision rules out (`auditor.symmetry.methods_for_mirror`)."""
    flag = config.flip if "flip" in config.explicit else None
    declared = entry.mirror_symmetric if entry.mirror_symmetric is not None else config.flip
    measured = probe.measure() if flag is None and declared is None else None
    decision = decide_mirror(flag, declared, measured, num_classes)
    if flag is None:
        say(decision.sentence(entry.name))
        if not decision.flip:
            say(
                "flip attention (how differently a model attends to an image and to its "
                "mirror) is not scored: without mirror symmetry it measures nothing about the "
                "label"
            )
    methods, warnings = methods_for_mirror(
        config.method, "method" in config.explicit, decision, entry.name
    )
    for warning in warnings:
        say(warning)
    return replace(config, flip=decision.flip, method=methods), decision
