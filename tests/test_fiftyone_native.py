"""The run as FiftyOne's own tools expect it (`auditor.brain`), through the real CLI: logits
that Brain's mistakenness reads, the stored embeddings as Brain visualization and similarity
runs (offline, no model), the suspects' CAMs as heatmaps, near-duplicate pairs with different
labels (one planted) in the run folder and as a saved view, and a re-review that changes none
of it."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from auditor.datasets.fashion_mnist import read_idx
from tests.conftest import chromium, free_port, needs_chromium, run_cli, served_app
from tests.test_cli_e2e import last_line_dir

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
    monkeypatch.delenv("FIFTYONE_APP_COLORSCALE", raising=False)
    from auditor import review_app

    opened = {}

    class Session:
        def wait(self, timeout):
            opened["waited"] = timeout

    def launch_app(**kwargs):
        opened.update(kwargs)
        return Session()

    monkeypatch.setattr(review_app.fo, "launch_app", launch_app)
    dataset = open_dataset(reviewed)
    review_app.launch(dataset, "127.0.0.1", 5999)
    assert opened["view"].name == "suspects" and opened["remote"] and opened["waited"] == -1
    # the dataset's own colours (FiftyOne takes them only from a dataset, not from a view)
    assert opened["color_scheme"].fields == dataset.app_config.color_scheme.fields
    assert os.environ["FIFTYONE_APP_COLORSCALE"] == "jet"  # for the App server it starts
    assert f"/datasets/{dataset.name}?view=suspects" in capsys.readouterr().out


def test_the_app_look_is_saved_on_the_dataset(reviewed):
    """The color scheme, ticked fields and descriptions `auditor.review_app` saves, as the App
    reads them from the dataset: distinct fixed colours for the label fields (each class of a
    field in the field's colour), the CAM colormap, `prediction` unticked and explained, every
    field described; and an annotator's own choice of ticked fields survives the next
    `audit review`."""
    fo = fiftyone()
    dataset = open_dataset(reviewed)
    scheme = dataset.app_config.color_scheme
    colours = {f["path"]: f["fieldColor"] for f in scheme.fields}
    assert set(colours) == {"given", "suggested", "prediction", "corrected"}  # no truth here
    assert len(set(colours.values())) == len(colours)
    for field in scheme.fields:
        assert {v["value"] for v in field["valueColors"]} == set(CLASSES)
        assert {v["color"] for v in field["valueColors"]} == {field["fieldColor"]}
    assert {c["path"]: c["name"] for c in scheme.colorscales} == {"cam": "jet", "cam_mirror": "jet"}
    assert dataset.app_config.active_fields.paths == ["given", "suggested", "corrected"]
    assert "same class as `suggested`" in dataset.get_field("prediction").description
    described = [f for f in dataset.get_field_schema() if f.startswith(("score_", "flag_"))]
    assert all(dataset.get_field(f).description for f in described)
    groups = [g.name for g in dataset.app_config.sidebar_groups]
    assert groups.index("labels") < groups.index("suspicion") < groups.index("review")
    ticked = dataset.app_config.active_fields
    dataset.app_config.active_fields = fo.ActiveFields(paths=["given", "cam"])
    dataset.save()
    review(reviewed)
    dataset = open_dataset(reviewed)
    assert dataset.app_config.active_fields.paths == ["given", "cam"]
    dataset.app_config.active_fields = ticked
    dataset.save()


def pixels_near(rgb: np.ndarray, hex_colour: str, tolerance: int = 10) -> np.ndarray:
    """Where `rgb` [h, w, 3] is within `tolerance` of `hex_colour` in every channel."""
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return (np.abs(rgb - target) <= tolerance).all(axis=2)


@needs_chromium
def test_the_app_shows_suspects_the_embeddings_panel_and_cam_heatmaps(reviewed, tmp_path):
    """In headless Chromium: the App opens on the suspects, the embeddings panel beside the grid
    shows the `umap` map, the tiles carry `given` and `suggested` chips in their saved colours,
    and with `cam` ticked the grey Fashion-MNIST tiles are painted with the colormap (blue and
    red both, not one field colour)."""
    from auditor.review_app import FIELD_COLOURS

    fo = fiftyone()
    dataset = open_dataset(reviewed)
    n_suspects = len(dataset.load_saved_view("suspects"))
    ticked = dataset.app_config.active_fields
    dataset.app_config.active_fields = fo.ActiveFields(paths=["given", "suggested", "cam"])
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
        dataset.app_config.active_fields = ticked
        dataset.save()
    assert markers[0] in dom  # the suspects view, not all 301 samples
    assert markers[1] in dom  # the embeddings panel shows the umap visualization
    assert markers[2] in dom  # the heatmap fields in the sidebar
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    grid = rgb[150:650, 320:900]  # the sample grid, left of the embeddings panel
    for field in ("given", "suggested"):  # the chips, in their saved colours
        assert pixels_near(grid, FIELD_COLOURS[field]).mean() > 0.01  # measured 0.046-0.050
    chips = pixels_near(grid, FIELD_COLOURS["given"]) | pixels_near(
        grid, FIELD_COLOURS["suggested"]
    )
    painted = ~chips & ((grid.max(axis=2) - grid.min(axis=2)) > 8)  # grey pixels: R = G = B
    assert painted.mean() > 0.3  # grey images painted by their CAMs (measured 0.84)
    # the jet colormap, low blue and high red (measured 0.34 and 0.45 of the grid); FiftyOne's
    # default viridis gave 0.39 blue but 0.09 red, one field colour little of either
    red = ~chips & (grid[..., 0] > grid[..., 2] + 40)
    blue = ~chips & (grid[..., 2] > grid[..., 0] + 40)
    assert red.mean() > 0.15 and blue.mean() > 0.15
