"""The annotator loop through the real CLI: review in FiftyOne (a real MongoDB), the App in
headless Chromium, decisions exported from FiftyOne, applied, and trained on."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import AUDIT, chromium, needs_chromium, run_cli
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow
FASHION = Path("/usr/share/datasets/fashion-mnist")


def fiftyone():
    """FiftyOne in this process, on the test session's MongoDB (conftest sets its folder)."""
    import fiftyone as fo

    return fo


def open_dataset(run_dir: Path):
    """The run's dataset as the CLI last wrote it (FiftyOne caches datasets per process)."""
    dataset = fiftyone().load_dataset(f"audit-demo-{run_dir.name}")
    dataset.reload()
    return dataset


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("review-runs")
    result = run_cli("run", "demo", "--limit", "300", "--epochs", "2", "--method", "ce",
                     "--no-report", "--out", str(out))  # fmt: skip
    return last_line_dir(result)


def review(run_dir: Path) -> None:
    result = run_cli("review", str(run_dir), "--no-launch")
    assert result.returncode == 0, result.stderr
    assert "saved views: suspects, disagree, decided" in result.stdout


def test_review_builds_fields_and_views_and_reimports_idempotently(run_dir):
    samples = pd.read_parquet(run_dir / "samples.parquet")
    review(run_dir)
    fo = fiftyone()
    dataset = open_dataset(run_dir)
    assert len(dataset) == len(samples) == 300
    schema = dataset.get_field_schema()
    for field in ("given", "prediction", "suggested", "truth", "corrected", "suspicion",
                  "score_ce_aum", "flag_suspicion", "detector_votes", "is_noisy", "audit_id"):  # fmt: skip
        assert field in schema, field
    assert Path(dataset.first().filepath).is_file()  # Fashion-MNIST rendered to PNG for the App
    views = dataset.list_saved_views()
    assert {"suspects", "disagree", "decided", "top-ce_aum", "top-ce_knn"} <= set(views)
    # a detector that ranks clean samples first keeps its field, has no view and no vote
    assert "score_ce_cartography_variability" in schema
    assert "top-ce_cartography_variability" not in views
    groups = json.loads((run_dir / "metrics.json").read_text())["rank_identical"]
    assert not {f"top-{name}" for names in groups.values() for name in names} & set(views)
    suspects = dataset.load_saved_view("suspects")
    assert len(suspects) == int(samples["flag_suspicion"].sum())
    scores = suspects.values("suspicion")
    assert scores == sorted(scores, reverse=True)
    top = dataset.load_saved_view("top-ce_aum").values("audit_id")
    expected = samples.sort_values("score_ce_aum", ascending=False, kind="stable")["sample_id"]
    assert set(top) == set(expected.head(len(top)))
    first = dataset.match({"audit_id": samples["sample_id"][0]}).first()
    assert first.given.label == samples["given_name"][0]
    assert first.truth.label == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                 "Shirt", "Sneaker", "Bag", "Ankle boot"][samples["true_label"][0]]  # fmt: skip

    sample = suspects.first()
    sample.tags.append("keep")
    sample["corrected"] = fo.Classification(label="Bag")
    sample.save()
    review(run_dir)  # again: the same samples, scores refreshed, the decision kept
    dataset = open_dataset(run_dir)
    assert len(dataset) == 300
    assert len(set(dataset.values("audit_id"))) == 300
    assert dataset.count_sample_tags() == {"keep": 1}
    assert dataset.load_saved_view("decided").first().corrected.label == "Bag"
    sample = dataset[sample.id]
    sample.tags = []
    sample["corrected"] = None
    sample.save()


def test_fiftyone_decisions_export_apply_and_retrain(run_dir, tmp_path):
    before = digests(FASHION)
    review(run_dir)
    dataset = open_dataset(run_dir)
    suspects = dataset.load_saved_view("suspects")
    ids = suspects.values("id")[:4]
    decisions = [["relabel"], ["relabel", "label:Bag"], ["keep"], ["drop"]]
    for sample_id, tags in zip(ids, decisions, strict=True):
        sample = dataset[sample_id]
        sample.tags = tags
        sample.save()
    result = run_cli("export", str(run_dir), "--from-fiftyone")
    assert result.returncode == 0, result.stderr
    reviewed = pd.read_csv(run_dir / "relabel-reviewed.csv", dtype=str, keep_default_na=False)
    assert len(reviewed) == 4
    by_decision = reviewed.set_index("sample_id")
    audit_ids = [dataset[i].audit_id for i in ids]
    assert (
        by_decision.loc[audit_ids[0], "new_label"]
        == by_decision.loc[audit_ids[0], "suggested_label"]
    )
    assert by_decision.loc[audit_ids[1], "new_name"] == "Bag"
    assert (
        by_decision.loc[audit_ids[2], "new_label"] == by_decision.loc[audit_ids[2], "given_label"]
    )
    assert by_decision.loc[audit_ids[3], "new_name"] == ""
    assert set(reviewed["source"]) == {f"fiftyone:audit-demo-{run_dir.name}"}

    out = tmp_path / "corrected.csv"
    result = run_cli("apply", str(run_dir), "--relabels", str(run_dir / "relabel-reviewed.csv"),
                     "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    corrected = pd.read_csv(out).set_index("sample_id")
    assert len(corrected) == 5000 + 1000 - 1  # demo's train + test, one dropped
    assert audit_ids[3] not in corrected.index
    assert corrected.loc[audit_ids[1], "label"] == "Bag"
    assert digests(FASHION) == before  # the original labels are byte-identical

    result = run_cli("run", "demo", "--labels", str(out), "--limit", "300", "--epochs", "1",
                     "--method", "ce", "--no-report", "--out", str(tmp_path / "after"))  # fmt: skip
    manifest = json.loads((last_line_dir(result) / "manifest.json").read_text())
    assert manifest["noise"]["type"] == "none" and manifest["config"]["noise_rate"] == 0.0
    assert manifest["labels_file"]["left_out"] == 1
    for sample_id in ids:
        dataset[sample_id].tags = []
        dataset[sample_id].save()


def test_export_conflicting_fiftyone_decisions_exit_2(run_dir):
    review(run_dir)
    dataset = open_dataset(run_dir)
    sample = dataset.first()
    sample.tags = ["keep", "drop"]
    sample.save()
    result = run_cli("export", str(run_dir), "--from-fiftyone", "--out", str(run_dir / "x.csv"))
    sample.tags = []
    sample.save()
    assert result.returncode == 2 and "tagged keep and drop" in result.stderr
    assert not (run_dir / "x.csv").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@needs_chromium
def test_app_serves_on_loopback_and_renders_in_chromium(run_dir, tmp_path):
    port = free_port()
    app = subprocess.Popen([str(AUDIT), "review", str(run_dir), "--port", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}/datasets/audit-demo-{run_dir.name}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert app.poll() is None, app.stdout.read()
                time.sleep(1)
        else:
            pytest.fail("the App did not answer within 180 s")
        assert listening_addresses(port) == {"127.0.0.1"}
        shot = tmp_path / "app.png"
        dom = chromium(tmp_path / "p1", "--dump-dom", url, budget_ms=20000, timeout=180).stdout
        chromium(tmp_path / "p2", "--window-size=1400,900", f"--screenshot={shot}", url,
                 budget_ms=20000, timeout=180)  # fmt: skip
    finally:
        os.killpg(app.pid, signal.SIGINT)
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
    assert f"audit-demo-{run_dir.name}" in dom
    for field in ("suspicion", "detector_votes", "given", "suggested"):
        assert field in dom, field
    samples = pd.read_parquet(run_dir / "samples.parquet")
    shown = sum(dom.count(name) for name in set(samples["given_name"]))
    assert shown > 20  # the grid's label pills: samples were rendered
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # not a blank page
