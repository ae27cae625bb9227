"""The run as FiftyOne's own tools expect it (`auditor.brain`), through the real CLI: logits
that Brain's mistakenness reads, the stored embeddings as Brain visualization and similarity
runs (offline, no model), the suspects' CAMs as heatmaps, near-duplicate pairs with different
labels (one planted) in the run folder and as a saved view, and a re-review that changes none
of it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from auditor.datasets.fashion_mnist import read_idx
from tests.conftest import chromium, needs_chromium, run_cli, served_app
from tests.test_cli_e2e import last_line_dir
from tests.test_review import free_port

pytestmark = pytest.mark.slow
FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = [
    "bag",
    "boot",
    "coat",
    "dress",
    "pullover",
    "sandal",
    "shirt",
    "sneaker",
    "top",
    "trouser",
]
FASHION_ORDER = [
    "top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
]
PLANTED = ("train/coat/copy-of-0.png", "train/sandal/0.png")  # one image, two labels


def fiftyone():
    """FiftyOne in this process, on the test session's MongoDB (conftest sets its folder)."""
    import fiftyone as fo

    return fo


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    """An image folder of 30 Fashion-MNIST training images per class and 5 test images per
    class, plus a copy of one sandal filed under coat (PLANTED)."""
    root = tmp_path_factory.mktemp("fashion-folder")
    for split, stem, per_class in (("train", "train", 30), ("test", "t10k", 5)):
        images = read_idx(FASHION / f"{stem}-images-idx3-ubyte.gz")
        labels = read_idx(FASHION / f"{stem}-labels-idx1-ubyte.gz")
        for label, name in enumerate(FASHION_ORDER):
            folder = root / split / name
            folder.mkdir(parents=True)
            for n, row in enumerate(np.flatnonzero(labels == label)[:per_class]):
                Image.fromarray(images[row]).save(folder / f"{n}.png")
    (root / PLANTED[0]).write_bytes((root / PLANTED[1]).read_bytes())
    return root


@pytest.fixture(scope="module")
def run_dir(image_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("native-runs")
    result = run_cli(
        "run",
        "imagefolder",
        "--root",
        str(image_root),
        "--image-size",
        "28",
        "--epochs",
        "2",
        "--method",
        "ce",
        "--no-report",
        "--out",
        str(out),
    )
    return last_line_dir(result)


@pytest.fixture(scope="module")
def reviewed(run_dir) -> Path:
    review(run_dir)
    return run_dir


def review(run_dir: Path) -> str:
    result = run_cli("review", str(run_dir), "--no-launch")
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def open_dataset(run_dir: Path):
    dataset = fiftyone().load_dataset(f"audit-imagefolder-{run_dir.name}")
    dataset.reload()
    return dataset


def test_run_folder_holds_embeddings_cams_and_the_planted_duplicate(run_dir):
    samples = pd.read_parquet(run_dir / "samples.parquet")
    embeddings = np.load(run_dir / "embeddings.npy")
    assert embeddings.dtype == np.float32 and embeddings.shape[0] == len(samples) == 301
    assert np.isfinite(embeddings).all()

    with np.load(run_dir / "cams.npz") as cams:
        ids, cam, mirror = cams["sample_id"], cams["cam"], cams["mirror_cam"]
    flagged = samples[samples["flag_suspicion"]].sort_values(
        "suspicion", ascending=False, kind="stable"
    )
    assert ids.tolist() == flagged["sample_id"].tolist()  # every flagged one, most suspect first
    assert cam.dtype == mirror.dtype == np.float16 and cam.shape == mirror.shape
    assert cam.shape[0] == len(ids) and cam.ndim == 3

    pairs = pd.read_csv(run_dir / "near_duplicates.csv", keep_default_na=False)
    exact = pairs[pairs["kind"] == "exact"]
    assert exact[["sample_id_a", "sample_id_b", "given_a", "given_b"]].values.tolist() == [
        [*PLANTED, "coat", "sandal"]
    ]
    assert exact["distance"].iloc[0] < 1e-5


def test_brain_mistakenness_visualization_similarity_heatmaps_and_duplicates(reviewed):
    fo = fiftyone()
    import fiftyone.brain as fob

    samples = pd.read_parquet(reviewed / "samples.parquet").set_index("sample_id")
    dataset = open_dataset(reviewed)
    assert {"umap", "similarity"} <= set(dataset.list_brain_runs())
    assert dataset.get_brain_info("umap").config.method == "umap"
    assert dataset.load_brain_results("umap").points.shape == (len(dataset), 2)
    assert dataset.count("metadata") == len(dataset) and dataset.first().metadata.width == 28

    # logits: softmax(logits) = the run's probabilities; prediction and suggested agree
    ids, logits, predicted, suggested = dataset.values(
        ["audit_id", "prediction.logits", "prediction.label", "suggested.label"]
    )
    z = np.array(logits)
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert np.allclose(probs, np.stack(samples.loc[ids, "probs"].to_numpy()), atol=1e-6)
    assert predicted == suggested

    # Brain's mistakenness with logits: above 1/2 exactly where the prediction is not the given
    # label
    fob.compute_mistakenness(dataset, "prediction", label_field="given", use_logits=True)
    mistakenness, given = dataset.values(["mistakenness", "given.label"])
    wrong = np.array(predicted) != np.array(given)
    assert wrong.any() and ((np.array(mistakenness) > 0.5) == wrong).all()

    # sort by similarity from the stored embeddings: the query first, offline
    first = dataset.first()
    nearest = dataset.sort_by_similarity(first.id, k=5, brain_key="similarity")
    assert len(nearest) == 5 and nearest.first().id == first.id

    # the suspects' CAMs as heatmaps on one scale for image and mirror
    with np.load(reviewed / "cams.npz") as cams:
        n_cams, shape = len(cams["sample_id"]), cams["cam"].shape[1:]
    with_cam = dataset.exists("cam")
    assert len(with_cam) == n_cams == len(dataset.exists("cam_mirror"))
    assert all(with_cam.values("flag_suspicion"))
    top = dataset.load_saved_view("suspects").first()
    assert isinstance(top.cam, fo.Heatmap) and top.cam.map.shape == shape
    low, high = top.cam.range
    assert (
        top.cam.range == top.cam_mirror.range
        and low <= top.cam.map.min() <= top.cam.map.max() <= high
    )

    # the planted pair in the near-duplicates view, each pointing at the other
    view = dataset.load_saved_view("near-duplicates")
    by_id = dict(zip(*view.values(["audit_id", "duplicate_of"]), strict=True))
    assert PLANTED[1] in by_id[PLANTED[0]] and PLANTED[0] in by_id[PLANTED[1]]
    groups = dict(zip(*view.values(["audit_id", "duplicate_group"]), strict=True))
    assert groups[PLANTED[0]] == groups[PLANTED[1]]


def test_re_review_replaces_brain_runs_and_fields_without_duplicates(reviewed):
    def state() -> dict:
        dataset = open_dataset(reviewed)
        return {
            "samples": len(dataset),
            "brain_runs": sorted(dataset.list_brain_runs()),
            "points": dataset.load_brain_results("umap").points.shape,
            "cams": len(dataset.exists("cam")),
            "duplicates": sorted(dataset.load_saved_view("near-duplicates").values("audit_id")),
            "views": dataset.list_saved_views(),
            "embedded": len(dataset.exists("embedding")),
            "similar": dataset.sort_by_similarity(dataset.first().id, k=3).values("audit_id"),
        }

    before = state()
    # the same run again: its embeddings' brain runs are kept, not computed again
    assert "embeddings (UMAP, similarity) are this run's already: reused" in review(reviewed)
    after = state()
    assert after == before and after["embedded"] == after["samples"]
    assert after["brain_runs"].count("umap") == 1 and after["views"].count("near-duplicates") == 1


def test_the_app_opens_on_the_suspects_view(reviewed, monkeypatch, capsys):
    from auditor import review as review_module

    opened = {}

    class Session:
        def wait(self, timeout):
            opened["waited"] = timeout

    def launch_app(**kwargs):
        opened.update(kwargs)
        return Session()

    monkeypatch.setattr(review_module.fo, "launch_app", launch_app)
    dataset = open_dataset(reviewed)
    review_module.launch(dataset, "127.0.0.1", 5999)
    assert opened["view"].name == "suspects" and opened["remote"] and opened["waited"] == -1
    assert f"/datasets/{dataset.name}?view=suspects" in capsys.readouterr().out


@needs_chromium
def test_the_app_shows_suspects_the_embeddings_panel_and_cam_heatmaps(reviewed, tmp_path):
    """In headless Chromium: the App opens on the suspects, the embeddings panel beside the grid
    lists the `umap` visualization, and with `cam` ticked the grid's grey Fashion-MNIST tiles
    are coloured by their heatmaps."""
    fo = fiftyone()
    dataset = open_dataset(reviewed)
    n_suspects = len(dataset.load_saved_view("suspects"))
    dataset.app_config.active_fields = fo.ActiveFields(paths=["cam"])  # tick `cam` only
    dataset.save()
    port = free_port()
    url = f"http://127.0.0.1:{port}/datasets/{dataset.name}?view=suspects"
    markers = (
        f'data-cy="entry-count-all">{n_suspects:,}</span> samples',
        '"emb-run-card-title"><span class="text-content-text-fg text-lg/9">umap<',
        'data-cy="cam_mirror-field"',
    )
    try:
        with served_app(reviewed, port):
            for attempt in range(2):  # a loaded machine may need a second, longer render
                dom = chromium(
                    tmp_path / f"p1-{attempt}",
                    "--dump-dom",
                    url,
                    budget_ms=20000 * (attempt + 1),
                    timeout=180,
                ).stdout
                if all(marker in dom for marker in markers):
                    break
            shot = tmp_path / "app.png"
            chromium(
                tmp_path / "p2",
                "--window-size=1600,900",
                f"--screenshot={shot}",
                url,
                budget_ms=20000,
                timeout=180,
            )
    finally:
        dataset.app_config.active_fields = None
        dataset.save()
    assert markers[0] in dom  # the suspects view, not all 301 samples
    assert markers[1] in dom  # the embeddings panel lists the umap visualization
    assert markers[2] in dom  # the heatmap fields in the sidebar
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    grid = rgb[150:650, 320:900]  # the sample grid, left of the embeddings panel
    coloured = (grid.max(axis=2) - grid.min(axis=2)) > 8  # grey pixels have R = G = B
    assert coloured.mean() > 0.3  # grey images tinted by their CAMs (measured 0.66 and 0.86)
