"""The annotator loop through the real CLI: review in FiftyOne (a real MongoDB), the App in
headless Chromium, decisions exported from FiftyOne, applied, and trained on."""

import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import chromium, free_port, needs_chromium, run_cli, served_app
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow
FASHION = Path("/usr/share/datasets/fashion-mnist")


def fiftyone():
    """FiftyOne in this process, on the test session's MongoDB (conftest sets its folder)."""
    import fiftyone as fo

    return fo


def F(path: str):
    """FiftyOne's ViewField, imported after conftest chose the database."""
    from fiftyone import ViewField

    return ViewField(path)


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
    result = run_cli(
        "run",
        "demo",
        "--limit",
        "300",
        "--epochs",
        "2",
        "--method",
        "ce",
        "--no-report",
        "--out",
        str(out),
    )
    return last_line_dir(result)


def review(run_dir: Path) -> None:
    result = run_cli("review", str(run_dir), "--no-launch")
    assert result.returncode == 0, result.stderr
    views = "suspects, second-look, reviewed, decided, detectors-split"
    assert f"saved views: {views}" in result.stdout


def test_review_builds_fields_and_views_and_reimports_idempotently(run_dir):
    samples = pd.read_parquet(run_dir / "samples.parquet")
    review(run_dir)
    fo = fiftyone()
    dataset = open_dataset(run_dir)
    assert len(dataset) == len(samples) == 300
    schema = dataset.get_field_schema()
    for field in (
        "given",
        "prediction",
        "suggested",
        "truth",
        "corrected",
        "suspicion",
        "score_ce_aum",
        "flag_suspicion",
        "detector_votes",
        "is_noisy",
        "audit_id",
    ):
        assert field in schema, field
    assert Path(dataset.first().filepath).is_file()  # Fashion-MNIST rendered to PNG for the App
    views = dataset.list_saved_views()
    members = json.loads((run_dir / "metrics.json").read_text())["ensemble"]["members"]
    assert {"suspects", "detectors-split", "decided"} <= set(views)
    # a top- view for each member of the ensemble only: fewer views, each worth opening
    assert {v for v in views if v.startswith("top-")} == {f"top-{m}" for m in members}
    # every view says in the App what it holds
    described = {v: dataset.get_saved_view_info(v).get("description") for v in views}
    assert all(described.values()), described
    assert described["suspects"].startswith("Flagged by the ensemble and not decided")
    # a detector that ranks clean samples first keeps its field, has no view and no vote
    assert "score_ce_cartography_variability" in schema
    assert "top-ce_cartography_variability" not in views
    groups = json.loads((run_dir / "metrics.json").read_text())["rank_identical"]
    assert not {f"top-{name}" for names in groups.values() for name in names} & set(views)
    suspects = dataset.load_saved_view("suspects")
    assert len(suspects) == int(samples["flag_suspicion"].sum())
    scores = suspects.values("suspicion")
    assert scores == sorted(scores, reverse=True)
    top = dataset.load_saved_view(f"top-{members[0]}").values("audit_id")
    expected = samples.sort_values(f"score_{members[0]}", ascending=False, kind="stable")
    expected = expected["sample_id"]
    assert set(top) == set(expected.head(len(top)))
    first = dataset.match({"audit_id": samples["sample_id"][0]}).first()
    assert first.given.label == samples["given_name"][0]
    assert (
        first.truth.label
        == [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ][samples["true_label"][0]]
    )

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
    result = run_cli(
        "apply",
        str(run_dir),
        "--relabels",
        str(run_dir / "relabel-reviewed.csv"),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    corrected = pd.read_csv(out).set_index("sample_id")
    assert len(corrected) == 5000 + 1000 - 1  # demo's train + test, one dropped
    assert audit_ids[3] not in corrected.index
    assert corrected.loc[audit_ids[1], "label"] == "Bag"
    assert digests(FASHION) == before  # the original labels are byte-identical

    result = run_cli(
        "run",
        "demo",
        "--labels",
        str(out),
        "--limit",
        "300",
        "--epochs",
        "1",
        "--method",
        "ce",
        "--no-report",
        "--out",
        str(tmp_path / "after"),
    )
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


@pytest.fixture
def fresh_ledger(run_dir):
    """The module's run with an empty review ledger and no marks, before and after the test."""

    def clear():
        (run_dir.parent / "review-ledger.csv").unlink(missing_ok=True)
        if fiftyone().dataset_exists(f"audit-demo-{run_dir.name}"):
            dataset = open_dataset(run_dir)
            dataset.untag_samples(dataset.distinct("tags"))
            for field in ("given", "prediction", "suggested", "truth", "cam", "cam_mirror"):
                dataset.untag_labels(dataset.distinct(f"{field}.tags"), label_fields=field)
            dataset.set_values("corrected", [None] * len(dataset))

    clear()
    yield run_dir
    clear()


def test_every_annotator_mark_is_one_decision_or_one_refusal(fresh_ledger, tmp_path):
    """Sample tags in any case, label tags, `corrected` alone, `label:` tags, remarks; then each
    conflict on its own: nothing exported is lost or invented, and every refusal names the
    sample. Re-importing keeps label tags; export never overwrites the run's files."""
    run_dir = fresh_ledger
    review(run_dir)
    fo = fiftyone()
    dataset = open_dataset(run_dir)
    ids = dataset.load_saved_view("suspects").values("audit_id")[:10]
    by_id = {s.audit_id: s for s in dataset.match(F("audit_id").is_in(ids))}
    given = {sid: by_id[sid].given.label for sid in ids}
    other = {sid: next(c for c in ("Bag", "Trouser") if c != given[sid]) for sid in ids}

    def mark(sid, tags=(), given_tags=(), suggested_tags=(), cam_tags=(), corrected=None):
        sample = by_id[sid]
        sample.tags = list(tags)
        sample.given.tags = list(given_tags)
        sample.suggested.tags = list(suggested_tags)
        sample.cam.tags = list(cam_tags)  # suspects carry their CAM heatmaps
        sample["corrected"] = fo.Classification(label=corrected) if corrected else None
        sample.save()

    mark(ids[0], tags=["Relabel"])  # capital R: was dropped silently
    mark(ids[1], given_tags=["relabel"])  # the App's label-tags mode on `given`
    mark(ids[2], corrected=other[ids[2]])  # a correction with no decision tag
    mark(ids[3], tags=["KEEP "])
    mark(ids[4], tags=["drop"])
    mark(ids[5], tags=["relabel", f"label:{other[ids[5]]}"])
    mark(ids[6], suggested_tags=["relabel"])  # "this suggestion is right"
    mark(ids[7], tags=["note: blurry, look again"])  # a remark: touched, undecided
    mark(ids[9], cam_tags=["Drop"])  # a label tag on the heatmap
    samples = pd.read_parquet(run_dir / "samples.parquet").set_index("sample_id")
    run_csv = (run_dir / "relabel.csv").read_bytes()

    result = run_cli("export", str(run_dir), "--from-fiftyone")
    assert result.returncode == 0, result.stderr
    assert "decisions: relabel 5, keep 1, drop 2, touched, undecided 1" in result.stderr
    assert ids[7] in result.stderr  # named as touched but undecided
    rows = pd.read_csv(run_dir / "relabel-reviewed.csv", dtype=str, keep_default_na=False)
    rows = rows.set_index("sample_id")
    decided = [*ids[:7], ids[9]]
    # exactly one row per decided sample, and one for the remark, with its note
    assert sorted(rows.index) == sorted([*decided, ids[7]])
    assert rows.loc[ids[7], "decision"] == "" and rows.loc[ids[7], "note"] == "blurry, look again"
    suggested = {sid: samples.loc[sid, "suggested_label"] for sid in ids}
    expected = {
        ids[0]: ("relabel", str(suggested[ids[0]])),
        ids[1]: ("relabel", str(suggested[ids[1]])),
        ids[2]: ("relabel", other[ids[2]]),
        ids[3]: ("keep", str(samples.loc[ids[3], "given_label"])),
        ids[4]: ("drop", ""),
        ids[5]: ("relabel", other[ids[5]]),
        ids[6]: ("relabel", str(suggested[ids[6]])),
        ids[9]: ("drop", ""),
    }
    for sid, (decision, new) in expected.items():
        assert rows.loc[sid, "decision"] == decision, sid
        assert new in (rows.loc[sid, "new_label"], rows.loc[sid, "new_name"]), sid
    ledger = pd.read_csv(run_dir.parent / "review-ledger.csv", dtype=str, keep_default_na=False)
    assert sorted(ledger["sample_id"]) == sorted([*decided, ids[7]])

    # re-importing keeps the label tags (they were wiped) and the sample tags
    review(run_dir)
    dataset = open_dataset(run_dir)
    assert dataset.count_label_tags("given") == {"relabel": 1}
    assert dataset.count_label_tags("suggested") == {"relabel": 1}
    assert dataset.count_label_tags("cam") == {"Drop": 1}
    assert dataset.count_sample_tags()["Relabel"] == 1

    # each conflict alone is refused, naming the sample and what is wrong; nothing written
    conflicts = [
        ({"tags": ["keep", "Drop"]}, "tagged keep and drop"),
        ({"tags": ["label:Bag", "label:Trouser"]}, "names two classes"),
        ({"tags": ["relabel", "label:Angry"]}, "'Angry' is not a class"),
        ({"corrected": "Angry"}, "`corrected`: 'Angry' is not a class"),
        ({"tags": ["relabled"]}, "'relabled' is not a decision"),
        ({"tags": ["keep"], "corrected": other[ids[8]]}, "tagged keep but names class"),
    ]
    out = tmp_path / "never.csv"
    for marks, needle in conflicts:
        mark(ids[8], **marks)
        result = run_cli("export", str(run_dir), "--from-fiftyone", "--out", str(out))
        assert result.returncode == 2, (marks, result.stderr)
        assert f"{ids[8]}: " in result.stderr and needle in result.stderr, result.stderr
        assert not out.exists()
    mark(ids[8])

    # export --top never overwrites the run's relabel.csv
    result = run_cli("export", str(run_dir), "--top", "5")
    assert result.returncode == 0, result.stderr
    assert (run_dir / "relabel.csv").read_bytes() == run_csv
    assert len(pd.read_csv(run_dir / "suspects-top5.csv")) == 5
    result = run_cli("export", str(run_dir), "--top", "5", "--out", str(run_dir / "relabel.csv"))
    assert result.returncode == 2 and "a file of the run folder" in result.stderr
    assert (run_dir / "relabel.csv").read_bytes() == run_csv


def test_apply_refuses_a_new_file_under_the_dataset_root(run_dir, tmp_path):
    relabels = tmp_path / "r.csv"
    relabels.write_text("sample_id,decision\n")
    target = FASHION / "corrected-labels.csv"
    result = run_cli("apply", str(run_dir), "--relabels", str(relabels), "--out", str(target))
    assert result.returncode == 2 and "inside the dataset's root" in result.stderr
    assert not target.exists()


def test_two_rounds_of_review_with_the_ledger(fresh_ledger, tmp_path):
    """Round one keeps some suspects and relabels others (alice exports, a note on one kept
    sample, a remark alone on another); after apply and a retrain (same reports folder), round
    two shows the kept ones as reviewed, not as suspects, a relabelled one flagged again as a
    disagreement, the contradicted ones as second looks with their reviewer and note, and the
    remark-only sample with its note."""
    run_dir = fresh_ledger
    review(run_dir)
    dataset = open_dataset(run_dir)
    suspects = dataset.load_saved_view("suspects")
    ids = suspects.values("audit_id")[:7]
    tags = [["keep", "note: blurry, ask a second annotator"], ["keep"], ["keep"], ["relabel"]]
    tags += [["relabel"], ["relabel"], ["note:occluded"]]
    for sid, sample_tags in zip(ids, tags, strict=True):
        sample = dataset.match(F("audit_id") == sid).first()
        sample.tags = sample_tags
        sample.save()
    result = run_cli("export", str(run_dir), "--from-fiftyone", "--reviewer", "alice")
    assert result.returncode == 0, result.stderr
    exported = pd.read_csv(run_dir / "relabel-reviewed.csv", dtype=str, keep_default_na=False)
    notes = dict(zip(exported["sample_id"], exported["note"], strict=True))
    assert notes[ids[0]] == "blurry, ask a second annotator" and notes[ids[6]] == "occluded"
    ledger_rows = pd.read_csv(run_dir.parent / "review-ledger.csv", dtype=str).fillna("")
    assert set(ledger_rows["reviewer"]) == {"alice"}
    assert ledger_rows.set_index("sample_id").at[ids[6], "decision"] == ""  # a remark only
    tags_only_id, ids = ids[6], ids[:6]
    corrected = tmp_path / "corrected.csv"
    result = run_cli(
        "apply",
        str(run_dir),
        "--relabels",
        str(run_dir / "relabel-reviewed.csv"),
        "--out",
        str(corrected),
    )
    assert result.returncode == 0, result.stderr
    assert "ledger_added 0" in result.stderr  # export had recorded them already

    # all 5,000 training images: --limit stratifies by label, so with corrected labels it
    # would pick another 300
    result = run_cli(
        "run",
        "demo",
        "--labels",
        str(corrected),
        "--epochs",
        "1",
        "--method",
        "ce",
        "--no-report",
        "--out",
        str(run_dir.parent.parent),
    )
    second = last_line_dir(result)
    assert "6 samples already reviewed" in result.stderr
    review(second)
    round2 = fiftyone().load_dataset(f"audit-demo-{second.name}")
    reviewed = set(round2.load_saved_view("reviewed").values("audit_id"))
    assert reviewed == set(ids)
    assert not reviewed & set(round2.load_saved_view("suspects").values("audit_id"))
    flagged_again = set(round2.match(F("flag_suspicion")).values("audit_id"))
    disputed = set(round2.match(F("review_disagreement")).values("audit_id"))
    assert disputed == flagged_again & set(ids[3:])
    # second looks: kept but flagged again, or relabelled, flagged again, another class suggested
    other = set(round2.match(F("suggested.label") != F("given.label")).values("audit_id"))
    expected = flagged_again & (set(ids[:3]) | (set(ids[3:]) & other))
    second_look = round2.load_saved_view("second-look")
    assert set(second_look.values("audit_id")) == expected and expected & set(ids[:3])
    assert set(second_look.values("review_reviewer")) == {"alice"}
    first = round2.match(F("audit_id") == ids[0]).first()
    assert first.review_note == "blurry, ask a second annotator"
    assert first.review_reviewer == "alice"
    remark = round2.match(F("audit_id") == tags_only_id).first()
    assert remark.review_note == "occluded" and not remark.reviewed
    result = run_cli("export", str(second), "--second-look", "--out", str(tmp_path / "look.csv"))
    assert result.returncode == 0, result.stderr
    look = pd.read_csv(tmp_path / "look.csv", dtype=str, keep_default_na=False)
    assert set(look["sample_id"]) == expected and set(look["reviewer"]) == {"alice"}
    assert set(look["earlier_decision"]) <= {"keep", "relabel"}
    result = run_cli("export", str(second))
    assert result.returncode == 0 and "6 samples already reviewed" in result.stderr
    exported = set(pd.read_csv(second / "suspects.csv", dtype=str)["sample_id"])
    assert not exported & set(ids)
    result = run_cli(
        "export", str(second), "--include-reviewed", "--out", str(tmp_path / "all.csv")
    )
    assert set(pd.read_csv(tmp_path / "all.csv", dtype=str)["sample_id"]) >= flagged_again & set(
        ids
    )


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
    url = f"http://127.0.0.1:{port}/datasets/audit-demo-{run_dir.name}"
    with served_app(run_dir, port):
        assert listening_addresses(port) == {"127.0.0.1"}
        shot = tmp_path / "app.png"
        dom = chromium(tmp_path / "p1", "--dump-dom", url, budget_ms=20000, timeout=180).stdout
        chromium(
            tmp_path / "p2",
            "--window-size=1400,900",
            f"--screenshot={shot}",
            url,
            budget_ms=20000,
            timeout=180,
        )
    assert f"audit-demo-{run_dir.name}" in dom
    for field in ("suspicion", "detector_votes", "given", "suggested"):
        assert field in dom, field
    samples = pd.read_parquet(run_dir / "samples.parquet")
    shown = sum(dom.count(name) for name in set(samples["given_name"]))
    assert shown > 20  # the grid's label pills: samples were rendered
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # not a blank page
