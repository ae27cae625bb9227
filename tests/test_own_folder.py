"""A user's own image folder (issue 19): no test split, images whose class a mirror changes,
smaller than the dataset's default size. The real CLI: a validation split of the tool's own is
recorded in the manifest and its samples are still scored; mirror symmetry is measured and,
absent, the run trains without flips and drops EAC with the reason (refuses it when named); the
working size is the images' own."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

SIDE = 12
# a bright bar on the left, on the right, at the top: a mirror swaps the first two classes
CLASSES = {
    "left": (slice(None), slice(0, 4)),
    "right": (slice(None), slice(8, 12)),
    "top": (slice(0, 4), slice(None)),
}
QUICK = ["--epochs", "3", "--batch-size", "16", "--no-report", "--device", "cpu", "--workers", "1"]


def bars(root: Path, per_class: int = 60) -> Path:
    """A folder `root/<class>/<i>.png` of SIDE px images, no test/ folder."""
    rng = np.random.default_rng(0)
    for name, where in CLASSES.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (SIDE, SIDE), dtype=np.uint8)
            image[where] = rng.integers(190, 255)
            Image.fromarray(image).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("own")
    root = bars(base / "bars")
    result = run_cli(
        "run",
        "imagefolder",
        "--root",
        str(root),
        "--out",
        str(base / "runs"),
        "--noise-rate",
        "0.2",
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    return base, root, result, run_dir


def test_the_validation_split_is_recorded_and_its_samples_are_scored(own_run):
    _, _, result, run_dir = own_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    validation = manifest["validation"]
    samples = pd.read_parquet(run_dir / "samples.parquet")
    per_class = samples["given_label"].value_counts().to_numpy()
    assert manifest["n_test"] == 0 and validation["n"] == np.floor(0.1 * per_class).sum()
    held = set(validation["sample_ids"])
    assert len(held) == validation["n"] and validation["stratified_by"] == "given label"
    assert len(samples) == 180 and held <= set(samples["sample_id"])
    rows = samples[samples["sample_id"].isin(held)]
    assert np.isfinite(rows["suspicion"]).all()
    assert np.isfinite(rows.filter(like="score_").to_numpy(dtype=float)).all()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["accuracy_split"] == "validation"
    assert len(metrics["accuracy"]["ce"]["per_epoch"]) == 3
    assert "validation accuracy (given labels)" in result.stderr
    assert f"ranks the {len(held)} validation samples among themselves" in result.stderr


def test_a_folder_a_mirror_changes_trains_without_flips_and_drops_eac(own_run):
    _, _, result, run_dir = own_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    mirror = manifest["mirror_symmetry"]
    assert mirror["source"] == "measured" and mirror["flip"] is False
    assert mirror["mirrored_accuracy"] < 0.9 * mirror["accuracy"]
    assert manifest["config"]["flip"] is False and manifest["config"]["method"] == ["ce"]
    assert "not mirror-symmetric" in result.stderr
    assert (
        "eac is not trained: its loss makes the attention maps of an image and of its mirror agree"
        in result.stderr
    )
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert not any("flip" in c for c in samples.columns)  # no flip attention score either
    assert manifest["config"]["image_size"] == SIDE  # the images' own size, not 64


def test_eac_named_on_such_a_folder_is_refused_with_the_reason(own_run):
    base, root, _, _ = own_run
    out = base / "refused"
    result = run_cli(
        "run", "imagefolder", "--root", str(root), "--out", str(out), "--method", "ce,eac", *QUICK
    )
    assert result.returncode == 2
    assert (
        "eac's loss makes the attention maps of an image and of its mirror agree" in result.stderr
    )
    assert "not mirror-symmetric" in result.stderr and "--flip" in result.stderr
    assert not out.exists()  # refused before the run folder


def test_flip_and_image_size_typed_are_kept(own_run):
    base, root, result, _ = own_run
    out = base / "flipped"
    result = run_cli(
        "run",
        "imagefolder",
        "--root",
        str(root),
        "--out",
        str(out),
        "--flip",
        "--image-size",
        "16",
        "--validation",
        "0",
        *QUICK,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(
        (Path(result.stdout.strip().splitlines()[-1]) / "manifest.json").read_text()
    )
    assert manifest["mirror_symmetry"]["source"] == "--flip" and manifest["config"]["flip"] is True
    assert manifest["config"]["method"] == ["ce", "eac"] and manifest["config"]["image_size"] == 16
    assert manifest["validation"] is None and "measuring mirror symmetry" not in result.stderr


def test_without_epochs_the_tool_trains_until_the_validation_accuracy_stops_rising(tmp_path):
    """No --epochs: each method trains 10 to 60 epochs, stopping at the first epoch the rule
    (`auditor.training.length.plateaued`) says the validation accuracy stopped rising; how long
    and why is printed and recorded in metrics.json."""
    from auditor.training.length import MAX_EPOCHS, MIN_EPOCHS, plateaued

    root = bars(tmp_path / "bars")
    quick = [a for a in QUICK if a not in ("--epochs", "3")]
    result = run_cli(
        "run",
        "imagefolder",
        "--root",
        str(root),
        "--out",
        str(tmp_path / "runs"),
        "--noise-rate",
        "0.2",
        *quick,
    )
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    accuracy = metrics["accuracy"]["ce"]["per_epoch"]
    epochs = len(accuracy)
    assert MIN_EPOCHS <= epochs <= MAX_EPOCHS
    assert not any(plateaued(accuracy[:e]) for e in range(1, epochs))
    assert epochs == MAX_EPOCHS or plateaued(accuracy)
    reason = metrics["training_length"]["ce"]
    assert reason.startswith(f"{epochs} epochs") and f"audit: ce: trained {reason}" in result.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["epochs"] is None
