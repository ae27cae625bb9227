"""A FiftyOne dataset as the input and the output of an audit (`auditor.fiftyone_source`,
`auditor.fiftyone_results`): a dataset built here with a classification field is audited from
Python (a view of it) and its results land in its own `audit_` fields and saved views, its
labels untouched; `audit run fiftyone` on a smaller selection then replaces those fields only;
the refusals (a field that is no classification, samples without a label, missing files) are
one sentence each, exit 2 from the command line."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from auditor.api import UserError, audit
from auditor.datasets.fashion_mnist import read_idx
from auditor.fiftyone_setup import fo
from auditor.fiftyone_source import selected
from tests.conftest import run_cli
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow
FASHION = Path("/usr/share/datasets/fashion-mnist")
NAMES = ["top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
PER_CLASS = 16
QUICK = {"methods": ["ce"], "epochs": 1, "image_size": 28, "flip": False, "report": False}
QUICK_FLAGS = ["--method", "ce", "--epochs", "1", "--image-size", "28", "--no-flip", "--no-report"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """PER_CLASS Fashion-MNIST images per class as PNG files, in a persistent FiftyOne dataset
    with `ground_truth` classifications and `boxes` detections, tagged "a" or "b" alternately;
    plus a sample without a label (tag "u") and one whose file is missing (tag "m")."""
    folder = tmp_path_factory.mktemp("fo-images")
    images = read_idx(FASHION / "train-images-idx3-ubyte.gz")
    labels = read_idx(FASHION / "train-labels-idx1-ubyte.gz")
    samples = []
    for label, name in enumerate(NAMES):
        for n, row in enumerate(np.flatnonzero(labels == label)[:PER_CLASS]):
            path = folder / f"{name}-{n}.png"
            Image.fromarray(images[row]).save(path)
            sample = fo.Sample(filepath=str(path), tags=["a" if n % 2 else "b"])
            sample["ground_truth"] = fo.Classification(label=name)
            sample["boxes"] = fo.Detections(detections=[])
            samples.append(sample)
    samples.append(fo.Sample(filepath=str(folder / "top-0.png"), tags=["u"]))
    missing = fo.Sample(filepath=str(folder / "gone.png"), tags=["m"])
    missing["ground_truth"] = fo.Classification(label="bag")
    samples.append(missing)
    ds = fo.Dataset(f"audit-io-{folder.name}", persistent=True)
    ds.add_samples(samples, progress=False)
    ds.default_classes = NAMES
    ds.save()
    return ds


def own_fields(ds) -> list[str]:
    return sorted(f for f in ds.get_field_schema() if f.startswith("audit_"))


def test_audit_writes_back_into_the_dataset_and_a_rerun_replaces_its_fields(dataset, tmp_path):
    before = dataset.values(["id", "ground_truth.label", "ground_truth.id"])
    run = audit(dataset.match_tags(["a", "b"]), out=str(tmp_path), **QUICK)
    assert len(run.samples) == 10 * PER_CLASS
    assert set(run.samples["sample_id"]) == set(dataset.match_tags(["a", "b"]).values("id"))
    dataset.reload()
    assert dataset.values(["id", "ground_truth.label", "ground_truth.id"]) == before
    fields = own_fields(dataset)
    for name in ("audit_suspicion", "audit_suggested", "audit_flag_suspicion", "audit_run_id"):
        assert name in fields
    assert any(f.startswith("audit_score_") for f in fields)
    audited = dataset.match_tags(["a", "b"])
    by_id = dict(zip(*audited.values(["id", "audit_suspicion"]), strict=True))
    expected = dict(zip(run.samples["sample_id"], run.samples["suspicion"], strict=True))
    assert by_id == pytest.approx(expected)
    suggested = dict(zip(*audited.values(["id", "audit_suggested.label"]), strict=True))
    names = run.samples["suggested_label"].map(dict(enumerate(NAMES)))
    assert suggested == dict(zip(run.samples["sample_id"], names, strict=True))
    suspects = dataset.load_saved_view("audit_suspects")
    assert len(suspects) == run.samples["flag_suspicion"].sum()
    assert run.to_fiftyone().name == dataset.name
    assert dataset.info["audit"]["run_id"] == run.manifest["run_id"]

    # the command line, on the samples tagged "a" only: its own fields replaced, nothing else
    result = run_cli(
        "run",
        "fiftyone",
        "--fiftyone-dataset",
        dataset.name,
        "--tags",
        "a",
        *QUICK_FLAGS,
        "--out",
        str(tmp_path),
    )
    second = last_line_dir(result)
    dataset.reload()
    assert dataset.values(["id", "ground_truth.label", "ground_truth.id"]) == before
    assert dataset.info["audit"]["run_id"] == second.name
    assert set(dataset.match_tags("a").values("audit_run_id")) == {second.name}
    assert set(dataset.match_tags("b").values("audit_suspicion")) == {None}
    assert set(dataset.match_tags("b").values("audit_run_id")) == {None}
    assert set(own_fields(dataset)) <= set(fields)
    assert set(dataset.load_saved_view("audit_suspects").values("tags")[0]) == {"a"}


def test_refusals_name_what_to_fix(dataset, tmp_path):
    with pytest.raises(UserError, match=r"1 samples have no ground_truth label"):
        audit(dataset, out=str(tmp_path), **QUICK)
    with pytest.raises(UserError, match=r"1 image files are missing \(e.g. .*gone.png\)"):
        audit(dataset.match_tags(["a", "m"]), out=str(tmp_path), **QUICK)
    with pytest.raises(UserError, match="label field 'ground_truth' begins with 'ground'"):
        audit(dataset, tags=["a"], prefix="ground", out=str(tmp_path), **QUICK)
    with pytest.raises(UserError, match="cannot be selected with these view stages"):
        selected(dataset, {"view_stages": [{"_cls": "no.such.Stage", "kwargs": []}]})
    dataset.add_sample_field("audit_mine", fo.StringField)  # the user's own, under the prefix
    with pytest.raises(UserError, match="its fields audit_mine begin with 'audit_'"):
        audit(dataset, tags=["a"], out=str(tmp_path), **QUICK)
    dataset.delete_sample_field("audit_mine")
    with pytest.raises(UserError, match="has no field 'nothing'"):
        audit(dataset, label_field="nothing", tags=["a"], out=str(tmp_path), **QUICK)
    cases = {  # the command line: exit 2 and the sentence
        ("--label-field", "boxes", "--tags", "a"): "holds Detections, not a classification",
        ("--fiftyone-view", "nope"): "has no saved view 'nope'",
    }
    for flags, needle in cases.items():
        result = run_cli(
            "run", "fiftyone", "--fiftyone-dataset", dataset.name, *flags, "--out", str(tmp_path)
        )
        assert result.returncode == 2 and needle in result.stderr, (flags, result.stderr)
    with pytest.raises(UserError, match="give --fiftyone-dataset NAME"):
        audit("fiftyone", out=str(tmp_path), **QUICK)
    assert not list(Path(tmp_path).rglob("manifest.json"))  # refused before any run folder
