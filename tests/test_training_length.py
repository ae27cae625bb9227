"""The training length chosen without --epochs (`auditor.training.length`), on hand-made
accuracy curves and in the engine."""

import numpy as np
import pytest
import torch

from auditor.config import RunConfig
from auditor.evidence import MethodEvidence
from auditor.training import engine
from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig, train
from auditor.training.length import (
    MAX_EPOCHS,
    MIN_EPOCHS,
    length_reason,
    plateaued,
)
from methods import METHODS
from methods.backbones import build_backbone


def test_never_stops_before_the_minimum_even_when_flat():
    flat = [0.5] * (MIN_EPOCHS - 1)
    assert not plateaued(flat)
    assert plateaued(flat + [0.5])


def test_a_new_best_in_the_last_window_keeps_a_flat_mean_training():
    curve = [0.5] * 15 + [0.51]  # flat means, but epoch 16 is a new best
    assert not plateaued(curve) and plateaued(curve[:15])


def test_keeps_training_while_the_mean_accuracy_rises_by_a_point_per_window():
    rising = [0.1 + 0.0021 * e for e in range(MAX_EPOCHS)]  # +0.0105 per 5 epochs
    assert not any(plateaued(rising[:e]) for e in range(1, MAX_EPOCHS + 1))


def test_stops_once_the_last_window_gains_less_than_a_point_over_the_one_before():
    curve = [0.04 * e for e in range(1, 11)] + [0.40] * 20  # learns for 10 epochs, then flat
    # after 17: epochs 13-17 average 0.400, 8-12 0.376 (+0.024); after 18: 0.400 vs 0.392, and
    # epochs 14-18 hold no new best
    assert next(e for e in range(1, len(curve) + 1) if plateaued(curve[:e])) == 18


def test_one_noisy_dip_does_not_stop_a_training_that_goes_on_learning():
    """The validation accuracy of ce on a 3,000-image folder (30% instance noise, 60 epochs):
    peak 0.5458 at epoch 6, a dip to 0.5254 at 9, then 0.6000 by 26. A rule on the best epoch
    ("no new best by 0.01 in 5 epochs") stopped it at 10, the window means alone at 13; the
    rule stops it at 25."""
    curve = [
        0.1966,
        0.2203,
        0.4000,
        0.5220,
        0.5390,
        0.5458,
        0.5458,
        0.5424,
        0.5254,
        0.5424,
        0.5559,
        0.5627,
        0.5559,
        0.5797,
        0.5797,
        0.5729,
        0.5763,
        0.5729,
        0.5932,
        0.5932,
        0.5898,
        0.5864,
        0.5932,
        0.5831,
        0.5831,
        0.6000,
        0.5966,
    ]
    assert next(e for e in range(1, len(curve) + 1) if plateaued(curve[:e])) == 25


def test_reasons_name_the_length_and_why():
    assert length_reason([], MIN_EPOCHS, None).startswith(f"{MIN_EPOCHS} epochs: no test")
    capped = length_reason([0.1 * (e % 9) for e in range(MAX_EPOCHS)], MAX_EPOCHS, "test")
    assert capped.startswith(f"{MAX_EPOCHS} epochs, the most") and "best 0.800 at epoch 9" in capped
    stopped = length_reason([0.3, 0.5, 0.5], 14, "validation")
    assert "mean validation accuracy of its last 5 rose less than 0.01 over the 5 before" in stopped
    assert "none was a new best" in stopped


def test_unset_epochs_train_until_the_plateau_with_the_papers_length_as_cap():
    chosen = RunConfig(dataset="demo", flip=False).train_config("cpu")
    assert (chosen.epochs, chosen.until_plateau) == (MAX_EPOCHS, True)
    fixed = RunConfig(dataset="demo", flip=False, epochs=7).train_config("cpu")
    assert (fixed.epochs, fixed.until_plateau) == (7, False)


@pytest.mark.parametrize("until_plateau", [False, True])
def test_the_engine_stops_where_the_rule_says_and_returns_only_the_epochs_it_trained(
    until_plateau, monkeypatch, tmp_path
):
    """The loop asks the rule before every epoch (here: stop once 3 are done) and cuts every
    per-epoch output to the epochs trained; resuming the stopped training trains no more."""
    monkeypatch.setattr(engine, "plateaued", lambda accuracy: len(accuracy) >= 3)
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (48, 1, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (48,), generator=g)
    config = TrainConfig(
        epochs=5,
        batch_size=16,
        mirror=False,
        until_plateau=until_plateau,
        checkpoint=str(tmp_path / "ce.pt"),
    )

    def trained() -> MethodEvidence:
        model = METHODS["ce"](build_backbone("resnet-small", 1), 3, METHODS["ce"].options_class())
        return train(
            model,
            pixels,
            labels,
            None,
            None,
            Normalizer.fit(pixels),
            config,
            held_out=np.arange(40, 48),
            final_pass=False,
        )

    epochs = 3 if until_plateau else 5
    for result in (trained(), trained()):  # the second resumes from the checkpoint
        assert len(result.epoch_accuracy) == epochs
        assert all(len(v) == epochs for v in result.signals.values())
        assert result.epoch_probs.shape[0] == epochs
