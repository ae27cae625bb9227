"""A dataset without a test split gets a validation split of the tool's own: stratified by given
label and seeded (`auditor.data_choices.validation_split`); the engine never trains on it, reads
its accuracy every epoch and records its samples' signals from the model in eval mode; the
ensemble ranks its samples among themselves (`auditor.scoring.grouped_rank_average`)."""

import numpy as np
import torch

from auditor.data_choices import validation_split
from auditor.scoring import grouped_rank_average
from auditor.training.augment import Normalizer
from auditor.training.engine import TrainConfig, predict, train
from auditor.training.signals import common_signals
from methods import build_method
from methods.backbones import build_backbone
from methods.base import Batch, StepOutput
from tests.test_best_epoch import data


def test_split_is_stratified_seeded_and_leaves_every_class_a_sample():
    labels = np.repeat(np.arange(4), [100, 50, 10, 1])
    held = validation_split(labels, 0.1, seed=3)
    assert np.array_equal(np.bincount(labels[held], minlength=4), [10, 5, 1, 0])
    assert np.array_equal(held, np.sort(held)) and len(set(held)) == len(held)
    assert np.array_equal(held, validation_split(labels, 0.1, seed=3))
    assert not np.array_equal(held, validation_split(labels, 0.1, seed=4))
    # at most n_c - 1 of a class: a two-sample class at half keeps one to train on
    pairs = np.array([0, 0, 1, 1])
    assert np.bincount(pairs[validation_split(pairs, 0.5, 0)]).tolist() == [1, 1]


def test_grouped_ranks_are_percentiles_within_each_group():
    score = np.array([1.0, 2.0, 3.0, 100.0, 200.0])  # the held-out samples score on another scale
    ranks = grouped_rank_average([score], np.array([3, 4]))
    np.testing.assert_allclose(ranks, [0.0, 0.5, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(grouped_rank_average([score], None), [0, 0.25, 0.5, 0.75, 1.0])


def test_held_out_samples_are_never_trained_on_and_are_read_from_the_eval_model():
    pixels, labels = data()
    normalize = Normalizer.fit(pixels)
    held = np.array([1, 6, 11, 20, 33])
    method = build_method("scn", build_backbone("resnet-small", 1), 4)
    seen: list[torch.Tensor] = []
    step = method.training_step

    def recording_step(batch: Batch, augment) -> StepOutput:
        seen.append(batch.index.clone())
        return step(batch, augment)

    method.training_step = recording_step
    result = train(
        method,
        pixels,
        labels,
        None,
        None,
        normalize,
        TrainConfig(epochs=2, batch_size=8),
        held_out=held,
    )
    trained = torch.cat(seen).numpy()
    assert not np.isin(trained, held).any()
    assert sorted(set(trained)) == sorted(set(range(40)) - set(held))
    # one accuracy per epoch, read on the held-out samples against their given labels
    logits, _ = predict(method, pixels[held], normalize, "cpu")
    assert len(result.epoch_accuracy) == 2
    assert result.epoch_accuracy[-1] == float((logits.argmax(1) == labels[held]).float().mean())
    # their last-epoch signals are the final model's eval-mode ones; a method's own signal is
    # the median of the trained samples' that epoch
    expected = common_signals(logits, labels[held])
    for name, values in expected.items():
        np.testing.assert_allclose(result.signals[name][-1, held], values.numpy(), atol=1e-5)
    others = np.setdiff1d(np.arange(40), held)
    alpha = torch.from_numpy(result.signals["alpha"][-1, others]).median().item()
    np.testing.assert_allclose(result.signals["alpha"][-1, held], alpha)
    # every output is [N], by sample index
    assert result.final_probs.shape == (40, 4) and result.best_probs.shape == (40, 4)
    assert (result.final_labels[held] == labels[held].numpy()).all()


def test_no_split_with_a_test_split_at_zero_or_when_no_class_can_give_a_sample(capsys):
    from auditor.config import resolve
    from auditor.data_choices import hold_out

    labels = np.repeat(np.arange(3), 30)
    config = resolve("demo", {}, {})
    assert hold_out(labels, config, has_test=True) is None
    assert hold_out(labels, resolve("demo", {"validation": 0}, {}), has_test=False) is None
    assert len(hold_out(labels, config, has_test=False)) == 9
    assert "holds out 9 of the 90 training samples" in capsys.readouterr().err
    assert hold_out(np.arange(7) % 7, config, has_test=False) is None  # one sample per class
    assert "no validation split" in capsys.readouterr().err


def test_the_mirror_probe_trains_on_at_most_probe_training_samples(monkeypatch):
    import auditor.data_choices as choices
    from auditor.config import resolve

    pixels, labels = data()
    seen = {}

    def recording_train(model, images, given, *args, held_out, **kwargs):
        seen.update(n=len(images), held=held_out, given=given.numpy())

    monkeypatch.setattr(choices, "PROBE_TRAINING", 12)
    monkeypatch.setattr(choices, "train", recording_train)
    held = np.array([0, 1, 2, 3])
    probe = choices.MirrorProbe(
        lambda seed: build_method("ce", build_backbone("resnet-small", 1), 4),
        resolve("demo", {}, {}),
        pixels,
        labels.numpy(),
        held,
        Normalizer.fit(pixels),
        "cpu",
    )
    accuracy, mirrored = probe.measure()
    assert seen["n"] == 12 + 4 and seen["held"].tolist() == [12, 13, 14, 15]
    assert np.bincount(seen["given"][:12]).tolist() == [3, 3, 3, 3]  # stratified
    assert seen["given"][12:].tolist() == labels[held].tolist()
    assert 0 <= accuracy <= 1 and 0 <= mirrored <= 1 and probe.seconds > 0
