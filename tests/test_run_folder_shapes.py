"""The checks a run folder's files go through when a command opens it
(`auditor.outputs.run_folder`, `auditor.damage`), fast: every value hypothesis puts
in manifest.json or metrics.json is either refused as damage or read by the commands without an
error; a resumed run's config is refused naming the key; checkpoints that cannot be read, are
not of their shape or would run code are refused. (Through the CLI: tests/test_damaged_runs.py.)"""

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor import accuracy_spread, compare
from auditor.damage import (
    DamagedRunFolder,
    ListOf,
    check_checkpoints,
    load_checkpoint,
    shape_problem,
)
from auditor.decisions import suspects_frame
from auditor.errors import UserError
from auditor.outputs.files import write_json
from auditor.outputs.run_folder import write_run_files
from auditor.outputs.run_readers import MANIFEST, read_run, read_samples
from auditor.resume import config_problem
from auditor.scoring import Scores
from auditor.training.augment import Normalizer
from auditor.training.checkpoint import resume_state
from auditor.training.engine import TrainConfig, train
from methods import build_method
from methods.backbones import build_backbone
from tests.test_untrusted_input import RunsCode

N, CLASSES = 8, ["cat", "dog", "owl"]
CONFIG = {"dataset": "mine", "method": ["ce"], "epochs": 2, "seed": 0, "root": None, "labels": None}
GOOD_MANIFEST = {
    "run_id": "r1",
    "status": "complete",
    "dataset": "mine",
    "dataset_kind": "csv",
    "class_names": CLASSES,
    "n_train": N,
    "seed": 0,
    "config": CONFIG,
    "timings_s": {"total": 1.5},
}
GOOD_METRICS = {
    "accuracy": {"ce": {"last": 0.5, "best": 0.6, "last5_mean": 0.55, "per_epoch": [0.5, 0.6]}},
    "detectors": {
        "suspicion": {"auroc": 0.7, "ap": 0.5, "precision_at_k": 0.5, "flagged": 2},
        "ce_aum": {"auroc": None, "ap": None, "precision_at_k": None},
    },
    "noise": {"type": "symmetric", "real_rate": 0.25},
    "rank_identical": {"ce_aum": ["ce_loss"]},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A complete run folder of N samples written by the run's own writers."""
    run = tmp_path_factory.mktemp("shapes") / "mine" / "r1"
    run.mkdir(parents=True)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(CLASSES)), N)
    given = np.arange(N) % len(CLASSES)
    scores = Scores(
        scores={"suspicion": rng.random(N), "ce_aum": rng.random(N)},
        flags={"suspicion": np.arange(N) < 2},
        probs=probs,
    )
    write_run_files(
        run,
        sample_ids=np.array([f"s{i}" for i in range(N)]),
        filepaths=np.array([f"/x/{i}.png" for i in range(N)]),
        class_names=CLASSES,
        given=given,
        true=np.roll(given, 1),
        scores=scores,
        metrics=GOOD_METRICS,
        dynamics=pa.table({"epoch": [1]}),
    )
    write_json(run / "manifest.json", GOOD_MANIFEST)
    return run


def test_a_run_as_written_is_read(run_dir):
    manifest, metrics = read_run(run_dir)
    assert manifest == GOOD_MANIFEST and metrics["detectors"]["suspicion"]["ap"] == 0.5
    assert list(read_samples(run_dir)["sample_id"]) == [f"s{i}" for i in range(N)]


@pytest.mark.parametrize(
    ("value", "shape", "problem"),
    [
        ({"a": 1}, {"a": str}, "has `a` = 1, expected a string"),
        ({}, {"a": str}, "has no `a`"),
        ([], {"a": str}, "holds [], expected an object"),
        ({"a": [1, "x"]}, {"a": ListOf(int)}, "has `a[1]` = 'x', expected an integer"),
        ({"a": True}, {"a": (float, None)}, "has `a` = True, expected a number or null"),
        ({"a": float("nan")}, {"a": float}, None),
    ],
)
def test_shape_problem_names_the_place_and_what_was_expected(value, shape, problem):
    assert shape_problem(value, shape) == problem


def test_a_value_that_contains_itself_ends_the_walk():
    loop = dict(GOOD_MANIFEST)
    loop["class_names"] = loop
    problem = shape_problem(loop, MANIFEST)
    assert problem.startswith("has `class_names` = {") and problem.endswith(
        ", expected a non-empty list"
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
MANIFEST_PLACES = [
    ("run_id",),
    ("status",),
    ("dataset",),
    ("class_names",),
    ("class_names", 1),
    ("n_train",),
    ("seed",),
    ("config",),
    ("config", "seed"),
    ("config", "root"),
    ("config", "labels"),
    ("timings_s",),
    ("timings_s", "total"),
]
METRICS_PLACES = [
    ("accuracy",),
    ("accuracy", "ce"),
    ("accuracy", "ce", "per_epoch"),
    ("accuracy", "ce", "last5_mean"),
    ("detectors",),
    ("detectors", "suspicion"),
    ("detectors", "suspicion", "ap"),
    ("detectors", "ce_aum", "auroc"),
    ("noise",),
    ("rank_identical",),
    ("rank_identical", "ce_aum"),
]


def replaced(document: dict, place: tuple, value: object) -> dict:
    """A copy of `document` with the value at `place` (keys, list indices) replaced, or removed
    when `value` is the `REMOVE` marker."""
    copy = json.loads(json.dumps(document))
    *path, last = place
    inner = copy
    for key in path:
        inner = inner[key]
    if value is REMOVE:
        del inner[last]
    else:
        inner[last] = value
    return copy


REMOVE = object()


def commands_read(run_dir: Path) -> None:
    """What export, apply and compare do with a run they accepted, short of writing."""
    manifest, metrics = read_run(run_dir)
    samples = read_samples(run_dir)
    suspects_frame(samples, manifest["class_names"], manifest["run_id"], None)
    runs = [(run_dir, manifest, metrics), (run_dir, manifest | {"run_id": "r2"}, metrics)]
    compare.detector_table(runs), compare.accuracy_table(runs)
    compare.legend_lines(runs), compare.rank_identical_lines(runs)
    accuracy_spread.spread_lines(runs)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["manifest.json", "metrics.json"]),
    st.data(),
    JSON | st.just(REMOVE),
)
def test_any_value_in_the_json_files_is_read_or_refused_as_damage(run_dir, name, data, value):
    good, places = (
        (GOOD_MANIFEST, MANIFEST_PLACES)
        if name == "manifest.json"
        else (GOOD_METRICS, METRICS_PLACES)
    )
    place = data.draw(st.sampled_from(places))
    (run_dir / name).write_text(json.dumps(replaced(good, place, value)))
    try:
        commands_read(run_dir)
    except DamagedRunFolder as err:
        assert str(err).startswith(f"this run folder is damaged: {run_dir}/")  # or samples.parquet
    except UserError as err:  # a status other than complete
        assert place == ("status",) and "not complete" in str(err)
    finally:
        write_json(run_dir / name, good)


def samples_damaged(run_dir: Path, change) -> str:
    """The refusal of samples.parquet after `change` (pa.Table -> pa.Table), then restored."""
    path = run_dir / "samples.parquet"
    table = pq.read_table(path)
    pq.write_table(change(table), path)
    try:
        with pytest.raises(DamagedRunFolder) as refusal:
            read_samples(run_dir)
    finally:
        pq.write_table(table, path)
    return str(refusal.value)


def replace_column(name: str, values: list, kind: pa.DataType | None = None):
    return lambda t: t.set_column(
        t.column_names.index(name), name, pa.array(values, kind or pa.int64())
    )


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda t: t.drop(["flag_suspicion"]), "has no column flag_suspicion"),
        (replace_column("suspicion", ["x"] * N, pa.string()), "suspicion of type string"),
        (replace_column("score_ce_aum", [1] * N), "score_ce_aum of type int64, expected double"),
        (replace_column("given_label", [-1] * N), "given_label -1"),
        (
            replace_column("true_label", [3] * N),
            "true_label 3, but manifest.json has 3 class_names",
        ),
        (replace_column("pred_label", [None] * N), "empty cells in column pred_label"),
        (replace_column("sample_id", ["a"] * N, pa.string()), "lists a sample_id twice"),
        (replace_column("probs", [[1.0]] * N, pa.list_(pa.float32())), "probs of [1] values"),
        (
            replace_column("given_name", ["owl"] * N, pa.string()),
            "given_name 'owl' for given_label 0",
        ),
        (lambda t: t.slice(1), "7 rows, but manifest.json says n_train 8"),
    ],
)
def test_a_samples_table_unlike_the_runs_is_refused_naming_what(run_dir, change, needle):
    assert needle in samples_damaged(run_dir, change)


def test_the_truth_may_be_unknown(run_dir):
    no_truth = [
        replace_column("true_label", [None] * N),
        replace_column("is_noisy", [None] * N, pa.bool_()),
    ]
    path = run_dir / "samples.parquet"
    table = pq.read_table(path)
    pq.write_table(no_truth[1](no_truth[0](table)), path)
    try:
        assert read_samples(run_dir)["true_label"].isna().all()
    finally:
        pq.write_table(table, path)


@pytest.fixture(scope="module")
def manifest_config(tmp_path_factory) -> dict:
    """The config a real run writes (RunConfig.as_dict), for `dataset` mine."""
    from auditor.config import resolve

    return resolve("mine", {"method": ["ce"], "epochs": 1}, {}).as_dict()


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"batch_size": None}, "config with batch_size null"),
        ({"epochs": "3"}, "--epochs '3': must be int"),
        ({"batch_size": 0}, "--batch-size 0: must be at least 2"),
        ({"method": ["sgd"]}, "--method sgd: choose from"),
        ({"method": ["ce", "eac"]}, "config with no eac_erasure"),
        ({"eac_lambda": 5.0}, "eac_lambda, options of no method or noise it uses"),
        ({"colour": "blue"}, "unknown options colour"),
        ({"lr": math.inf}, "--lr inf: must be a finite number"),
    ],
)
def test_a_resumed_config_is_refused_naming_the_key(manifest_config, edit, needle):
    assert config_problem("mine", manifest_config) is None
    assert needle in config_problem("mine", manifest_config | edit)
    missing = {k: v for k, v in manifest_config.items() if k != "seed"}
    assert config_problem("mine", missing) == "has a config with no seed"


@settings(max_examples=200, deadline=None)
@given(st.data(), JSON)
def test_any_value_in_a_resumed_config_is_taken_or_refused(manifest_config, data, value):
    key = data.draw(st.sampled_from(sorted(manifest_config)))
    problem = config_problem("mine", manifest_config | {key: value})
    assert problem is None or problem.startswith("has a config")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    """A real checkpoint after one epoch of a tiny `ce` training, and what makes that training."""
    folder = tmp_path_factory.mktemp("checkpoints")
    setup = training_setup()
    train(*setup["args"], TrainConfig(epochs=1, batch_size=8, checkpoint=str(folder / "ce.pt")))
    return folder / "ce.pt", setup


def training_setup(classes: int = 3) -> dict:
    """The arguments of `train` before its config: a `ce` model of `classes` classes and 12
    random images."""
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (12, 1, 16, 16), dtype=torch.uint8)
    labels = torch.arange(12) % 3
    method = build_method("ce", build_backbone("resnet-small", 1), classes)
    return {"args": (method, pixels, labels, None, None, Normalizer.fit(pixels))}


def refusal(path: Path) -> str:
    with pytest.raises(DamagedRunFolder) as refused:
        check_checkpoints(path.parent)
    return str(refused.value)


def test_a_checkpoint_is_read_with_weights_only_and_checked(checkpoint, tmp_path):
    path, _ = checkpoint
    assert load_checkpoint(path)["epochs_done"] == 1
    check_checkpoints(path.parent)
    bad = tmp_path / "ce.pt"
    for data, needle in [
        (path.read_bytes()[:-100], "is truncated or not a file torch.save wrote"),
        (b"", "is truncated"),
        (pickle.dumps({"epochs_done": 1}), "is truncated or not a file torch.save wrote (no zip"),
    ]:
        bad.write_bytes(data)
        assert f"checkpoint {bad} {needle}" in refusal(bad) and "delete it" in refusal(bad)
    loop: dict = {"epochs_done": 1}
    loop["model"] = loop
    torch.save(loop, bad)
    assert "`model.epochs_done` = 1, expected a Tensor" in refusal(bad)


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": RunsCode(marker)}, tmp_path / "ce.pt")  # a zip, as torch.save writes
    assert "cannot be read by torch.load (Weights only load failed" in refusal(tmp_path / "ce.pt")
    assert not marker.exists()


def test_a_checkpoint_of_another_model_is_refused_when_it_is_loaded(checkpoint, tmp_path):
    path, _ = checkpoint
    other = training_setup(classes=5)["args"][0]  # a 5-class head
    optimizer = torch.optim.Adam(other.parameters())
    loop = {
        "model": other,
        "optimizer": optimizer,
        "augment": torch.Generator(),
        "scheduler": torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.9),
    }
    record = {"loss": torch.zeros(1, 13)}
    with pytest.raises(DamagedRunFolder, match="does not fit this run's training"):
        resume_state(str(path), loop, record, torch.zeros(12, dtype=torch.long), [], [])
    with pytest.raises(DamagedRunFolder, match="says 1 epochs are done, of 0"):
        resume_state(str(path), loop, {"loss": torch.zeros(0, 13)}, torch.zeros(12), [], [])


def test_a_failed_save_leaves_the_last_checkpoint_whole(checkpoint, tmp_path, monkeypatch):
    from auditor.training import checkpoint as module

    path, setup = checkpoint
    copy = tmp_path / "ce.pt"
    copy.write_bytes(path.read_bytes())

    def dies_halfway(state, target):
        Path(target).write_bytes(b"PK half")
        raise KeyboardInterrupt

    monkeypatch.setattr(module.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        train(*setup["args"], TrainConfig(epochs=2, batch_size=8, checkpoint=str(copy)))
    assert copy.read_bytes() == path.read_bytes() and [p.name for p in tmp_path.iterdir()] == [
        "ce.pt"
    ]


def test_a_run_written_before_validation_and_flip_resumes_as_it_trained(manifest_config, tmp_path):
    from auditor.resume import resumable_manifest

    old = {k: v for k, v in manifest_config.items() if k not in ("validation", "flip")}
    manifest = {
        "run_id": "r",
        "status": "running",
        "dataset": "mine",
        "class_names": ["a", "b"],
        "dataset_kind": "imagefolder",
        "config": old,
        "dataset_fingerprint": "f",
        "command": ["audit", "run", "mine"],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    config = resumable_manifest(tmp_path)["config"]
    assert config["validation"] == 0.0 and config["flip"] is True  # no split, flips: as it ran
