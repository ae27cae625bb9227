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
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from auditor.config import RunConfig
from auditor.datasets.image_size import own_image_size
from auditor.datasets.pixel_map import Pixels, take
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import SampleTable
from auditor.symmetry import MirrorDecision, decide_mirror, methods_for_mirror, mirror_accuracy
from auditor.training import distributed
from auditor.training.augment import Normalizer
from auditor.training.engine import train
from methods.base import Method

# Epochs of the mirror probe (plain CE without flips): enough for a model to classify clearly
# above chance, whose accuracy on mirrored images is what is measured.
PROBE_EPOCHS = 3


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
    size = max(own, 8)
    say(f"working size {size} px, the images' own (the {entry.name} default is "
        f"{config.image_size} px; --image-size sets it)")  # fmt: skip
    return replace(config, image_size=size)


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the held-out samples: for each given class c of n_c samples,
    min(round(fraction * n_c), n_c - 1) of them drawn without replacement by a generator seeded
    with `seed` (every class keeps a sample to train on)."""
    rng = np.random.default_rng([seed, 1])
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(int(np.floor(fraction * len(members) + 0.5)), len(members) - 1)
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


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
    and seed) on the training samples, read on held-out images: the validation split
    (`held_out`, their given labels) or the test split (`pixels[1]`, `test_labels`)."""

    make: Callable[[int], Method]  # a new plain CE model from a seed
    config: RunConfig
    pixels: tuple[Pixels, Pixels]  # uint8 train [N, C, H, W], test
    given: np.ndarray  # [N] given labels of the training samples
    held_out: np.ndarray | None
    test_labels: np.ndarray
    normalize: Normalizer
    device: str

    def can_measure(self) -> bool:
        return self.held_out is not None and len(self.held_out) > 0 or len(self.test_labels) > 0

    def measure(self) -> tuple[float, float]:
        """(accuracy on the held-out images, accuracy on their mirror images)."""
        epochs = min(PROBE_EPOCHS, self.config.epochs)
        say(f"measuring mirror symmetry: {epochs} epochs of ce without flips, read on the "
            f"{'validation' if self.held_out is not None else 'test'} split")  # fmt: skip
        settings = replace(self.config, flip=False, epochs=epochs).train_config(self.device)
        model = self.make(self.config.seed)
        labels = torch.from_numpy(self.given)
        if self.held_out is not None:
            train(model, self.pixels[0], labels, None, None, self.normalize, settings,
                  final_pass=False, held_out=self.held_out)  # fmt: skip
            images, truth = take(self.pixels[0], self.held_out), self.given[self.held_out]
        else:
            train(model, self.pixels[0], labels, self.pixels[1], torch.from_numpy(self.test_labels),
                  self.normalize, settings, final_pass=False)  # fmt: skip
            images, truth = self.pixels[1], self.test_labels
        return mirror_accuracy(model, images, truth, self.normalize, self.device, amp=settings.amp)


def decide_flip(
    config: RunConfig, entry: DatasetEntry, probe: MirrorProbe, num_classes: int
) -> tuple[RunConfig, MirrorDecision]:
    """(`config` with `flip` decided and without the methods that need a mirror symmetry the
    data lacks, the decision). `--flip/--no-flip` (or a resumed run's record) first, then the
    registry's `mirror_symmetric`, then `probe`'s measurement when there is a held-out split;
    without any of them, no flips. Refuses a method the user named (`--method eac`) that the
    decision rules out (`auditor.symmetry.methods_for_mirror`)."""
    measured = None
    if config.flip is None and entry.mirror_symmetric is None and probe.can_measure():
        measured = probe.measure()
    decision = decide_mirror(config.flip, entry.mirror_symmetric, measured, num_classes)
    if "flip" not in config.explicit:
        say(decision.sentence(entry.name))
    methods, warnings = methods_for_mirror(
        config.method, "method" in config.explicit, decision, entry.name
    )
    for warning in warnings:
        say(warning)
    return replace(config, flip=decision.flip, method=methods), decision
