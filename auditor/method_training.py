"""The second phase of `audit run`: train every method of the prepared run (`auditor.prepare`)
and keep what each training leaves behind (`MethodEvidence`), its accuracy per the papers'
protocols, its model, and, when the tool chose the training length, how long and why. With
--weights, the pre-trained backbone is also read as it is, before fine-tuning
(`auditor.training.frozen`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from auditor.config import RunConfig, part_keys
from auditor.evaluation import accuracy_protocols
from auditor.evidence import MethodEvidence
from auditor.options import SettingError
from auditor.prepare import Prepared
from auditor.progress import progress_bar
from auditor.training import distributed
from auditor.training.aum_threshold import aum_threshold_run
from auditor.training.crossfit import cross_fit
from auditor.training.engine import train
from auditor.training.frozen import FOLDS, frozen_evidence
from auditor.training.length import MIN_EPOCHS, length_reason
from methods.base import Method


@dataclass(frozen=True)
class Trained:
    """Every method's training, in the order of --method."""

    evidence: list[MethodEvidence]
    accuracy: dict[str, dict]  # method -> `auditor.evaluation.accuracy_protocols`
    models: dict[str, Method]  # method -> its model after training
    lengths: dict[str, str]  # without --epochs: method -> how long it trained and why
    # with --weights: the frozen pre-trained features' evidence (`auditor.training.frozen`),
    # scored beside the methods' but neither trained nor drawn; its seconds
    frozen: MethodEvidence | None = None
    frozen_seconds: float = 0.0


def train_all(
    prepared: Prepared, checkpoints: Path, after_each: Callable[[str, float], None]
) -> Trained:
    """Train every method of the run in turn; `after_each(method, seconds)` once each is done
    (the run folder records it). Without --epochs, prints how long each trained and why."""
    evidence, accuracy, models, lengths = [], {}, {}, {}
    for name in prepared.config.method:
        ev, seconds, models[name] = train_method(name, prepared, checkpoints)
        evidence.append(ev)
        accuracy[name] = accuracy_protocols(ev.epoch_accuracy)
        if prepared.config.epochs is None:
            lengths[name] = length_reason(
                ev.epoch_accuracy, len(ev.signals["loss"]), prepared.split
            )
            if distributed.rank() == 0:
                print(f"audit: {name}: trained {lengths[name]}", file=sys.stderr)
        after_each(name, seconds)
    frozen, frozen_seconds = read_frozen(prepared)
    return Trained(evidence, accuracy, models, lengths, frozen, frozen_seconds)


def read_frozen(prepared: Prepared) -> tuple[MethodEvidence | None, float]:
    """(the frozen pre-trained features' evidence, its seconds) of a run with --weights, else
    (None, 0); says on stderr what it read."""
    if prepared.weights is None:
        return None, 0.0
    start = time.perf_counter()
    test = prepared.pixels[1] if len(prepared.test_table) else None
    frozen = frozen_evidence(
        prepared.new_model(prepared.config.method[0], prepared.config.seed),
        prepared.pixels[0],
        prepared.labels.given,
        test,
        prepared.test_table.labels,
        prepared.normalize,
        prepared.device,
        prepared.held_out,
        prepared.config.seed,
    )
    seconds = time.perf_counter() - start
    if distributed.rank() == 0:
        if frozen is None:
            said = "no frozen-features reading: a given class has a single sample"
        else:
            accuracy = (
                f"accuracy {frozen.epoch_accuracy[0]:.3f}, "
                if frozen.epoch_accuracy
                else "no held-out accuracy, "
            )
            said = (
                f"the --weights backbone's frozen features, {FOLDS}-fold cross-validated "
                f"logistic regression ({accuracy}{seconds:.0f} s)"
            )
        print(f"audit: frozen: {said}", file=sys.stderr)
    return frozen, seconds


def train_method(
    name: str, prepared: Prepared, checkpoints: Path
) -> tuple[MethodEvidence, float, Method]:
    """(the evidence of method `name`'s training, with its cross-fitted probabilities and AUM
    threshold runs when asked for; its seconds; its model after training). Its checkpoints are
    written in `checkpoints` (`--resume` goes on from them)."""
    config, device = prepared.config, prepared.device
    given, pixels, normalize = prepared.labels.given, prepared.pixels[0], prepared.normalize
    held_out = prepared.held_out
    test = prepared.pixels[1] if len(prepared.test_table) else None

    def make(seed: int, classes: int | None = None) -> Method:
        return prepared.new_model(name, seed, classes)

    if distributed.rank() == 0:  # the other nodes may not see the run folder
        checkpoints.mkdir(exist_ok=True)
    train_config = replace(config.train_config(device), checkpoint=str(checkpoints / f"{name}.pt"))
    if train_config.until_plateau and prepared.split is None:
        train_config = replace(train_config, epochs=MIN_EPOCHS, until_plateau=False)  # no accuracy
    n = len(given)
    trained = n - (0 if held_out is None else len(held_out))
    # K fold models each see (K - 1) / K of the data; AUM threshold runs are two more trainings
    others = n * (config.folds - 1 + (2 if config.aum_threshold else 0))
    total = train_config.epochs * (trained + others)  # the most, without --epochs
    start = time.perf_counter()
    with progress_bar(total, name, "img", shown=distributed.rank() == 0) as bar:

        def tick(k: int, _total: int) -> None:
            bar.update(k)

        model = make(config.seed)
        evidence = train(
            model,
            pixels,
            torch.from_numpy(given),
            test,
            torch.from_numpy(prepared.test_table.labels),
            normalize,
            train_config,
            progress=tick,
            held_out=held_out,
        )
        # the folds and AUM's threshold runs train as long as the model they stand beside
        epochs = len(evidence.signals["loss"])
        train_config = replace(train_config, epochs=epochs, until_plateau=False)
        bar.total = epochs * (trained + others)
        bar.refresh()
        if config.folds >= 2:
            oos = cross_fit(
                make, pixels, given, normalize, train_config, config.folds, progress=tick
            )
            evidence = replace(evidence, oos_probs=oos)
        if config.aum_threshold:
            aum_runs = aum_threshold_run(
                make,
                pixels,
                given,
                prepared.train_table.num_classes,
                normalize,
                train_config,
                progress=tick,
            )
            evidence = replace(evidence, aum_runs=aum_runs)
    check_converged(evidence, config)
    return evidence, time.perf_counter() - start, model


def check_converged(evidence: MethodEvidence, config: RunConfig) -> None:
    """Refuse a training whose model diverged: NaN or infinite probabilities or embeddings
    (from values within their declared bounds that still overflow the loss: a high rate, a
    heavy loss weight, a checkpoint of huge weights) would be scored as if they meant
    something. The message names the rate, the method's numeric options and the weights."""
    outputs = {
        "probabilities": evidence.final_probs,
        "cross-fitted probabilities": evidence.oos_probs,
        "embeddings": evidence.embeddings,
    }
    for what, values in outputs.items():
        if values is not None and not np.isfinite(values).all():
            own = [
                f"--{key.replace('_', '-')} {value:g}"
                for key, (group, part, _, value) in part_keys(config).items()
                if (group, part) == ("methods", evidence.name) and isinstance(value, float)
            ]
            weights = [f"--weights {config.weights}"] if config.weights else []
            raise SettingError(
                f"{evidence.name}: training diverged, its {what} are NaN or infinite. Its "
                f"settings: {', '.join([f'--lr {config.lr:g}', *own, *weights])}: lower the "
                "rate or the loss weights (or give other weights) and start a new run; --resume "
                "keeps a run's settings and would diverge again"
            )
