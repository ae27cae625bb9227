"""End-to-end: the real `audit` CLI in a subprocess on real files (Debian's Fashion-MNIST, and
synthetic faces written in RAF-DB's exact layout)."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from auditor.datasets.fashion_mnist import read_idx
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def last_line_dir(result) -> Path:
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert run_dir.is_dir()
    return run_dir


def test_datasets_lists_registry_with_status():
    result = run_cli("datasets")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["name", "kind", "root", "found", "size"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert {
        "demo",
        "fashion-mnist",
        "synth-faces",
        "raf-db",
        "imagefolder",
        "ferplus",
        "affectnet",
        "csv",
    } <= set(rows)
    assert " no " in rows["ferplus"] and "missing" in rows["ferplus"]
    assert " yes " in rows["demo"]


def test_demo_small_run_is_consistent_with_the_real_labels(tmp_path):
    result = run_cli("run", "demo", "--limit", "600", "--epochs", "2", "--out", str(tmp_path))
    run_dir = last_line_dir(result)
    assert run_dir.parent == tmp_path / "demo"
    df = pq.read_table(run_dir / "samples.parquet").to_pandas()
    assert len(df) == 600 and df["sample_id"].is_unique
    # the truth is Fashion-MNIST's own label of that row; is_noisy is exactly the injected mask
    labels = read_idx(FMNIST / "train-labels-idx1-ubyte.gz")
    rows = df["sample_id"].str.removeprefix("train-").astype(int)
    assert np.array_equal(df["true_label"], labels[rows])
    assert np.array_equal(df["is_noisy"], df["given_label"] != df["true_label"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["noise"]["real_rate"] == pytest.approx(df["is_noisy"].mean())
    assert 0.2 < manifest["noise"]["real_rate"] < 0.4
    assert "test accuracy" in result.stdout


def test_cross_fitted_run(tmp_path):
    result = run_cli(
        "run",
        "demo",
        "--method",
        "ce",
        "--limit",
        "400",
        "--epochs",
        "1",
        "--folds",
        "2",
        "--out",
        str(tmp_path),
    )
    run_dir = last_line_dir(result)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    members = (
        {"ce_aum", "ce_self_confidence", "ce_knn"},
        {"ce_confident_disagreement"},
    )
    assert set(metrics["ensemble"]["members"]) in members  # chosen by the estimated noise
    assert set(metrics["ensemble"]["mixture_separation"]) == {"loss_mixture_ce"}
    assert "probabilities out-of-sample (cross-fitted)" in metrics["ensemble"]["decisions"][1]
    assert json.loads((run_dir / "manifest.json").read_text())["config"]["folds"] == 2


@pytest.fixture(scope="module")
def rafdb_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("RAF-DB")
    result = run_cli(
        "synth-faces", str(root), "--train", "140", "--test", "42", "--noise-files", "0.3"
    )
    assert result.returncode == 0, result.stderr
    return root


def test_rafdb_without_noise_file(rafdb_root, tmp_path):
    result = run_cli(
        "run",
        "raf-db",
        "--root",
        str(rafdb_root),
        "--backbone",
        "resnet18",
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--out",
        str(tmp_path),
    )
    run_dir = last_line_dir(result)
    df = pq.read_table(run_dir / "samples.parquet").to_pandas()
    assert len(df) == 140 and df["sample_id"].iloc[0] == "train_00001"
    assert df["true_label"].isna().all() and df["is_noisy"].isna().all()
    assert json.loads((run_dir / "metrics.json").read_text())["detectors"] == {}


def test_rafdb_with_published_noise_file_format(rafdb_root, tmp_path):
    noise_file = rafdb_root / "noise03.txt"
    result = run_cli(
        "run",
        "raf-db",
        "--root",
        str(rafdb_root),
        "--noise-file",
        str(noise_file),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--out",
        str(tmp_path),
    )
    run_dir = last_line_dir(result)
    df = pq.read_table(run_dir / "samples.parquet").to_pandas()
    noisy = [int(line.split()[1]) - 1 for line in noise_file.read_text().splitlines()]
    clean = [
        int(line.split()[1]) - 1
        for line in (rafdb_root / "EmoLabel/list_patition_label.txt").read_text().splitlines()
        if line.startswith("train_")
    ]
    assert df["given_label"].tolist() == noisy and df["true_label"].tolist() == clean
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["noise"]["type"] == "file"
    assert manifest["noise"]["real_rate"] == pytest.approx(
        np.mean(np.array(noisy) != np.array(clean))
    )


def test_rafdb_without_data_exits_2_with_instructions(tmp_path):
    result = run_cli("run", "raf-db", env={"AUDIT_RAF_DB_ROOT": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert "EmoLabel/list_patition_label.txt" in result.stderr
    assert "--root" in result.stderr and "AUDIT_RAF_DB_ROOT" in result.stderr
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "no-such-dataset"], "unknown dataset"),
        (["run", "demo", "--method", "xyz"], "--method xyz"),
        (["run", "demo", "--noise-rate", "1.5"], "--noise-rate 1.5"),
    ],
)
def test_bad_usage_exits_2(args, needle):
    result = run_cli(*args)
    assert result.returncode == 2 and needle in result.stderr


def test_default_demo_finds_the_injected_noise(tmp_path):
    """The README's demo, as it ships: 30% symmetric noise, ce and eac; the best detector must
    reach AUROC 0.90."""
    run_dir = last_line_dir(run_cli("run", "demo", "--out", str(tmp_path)))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    best = max(m["auroc"] for m in metrics["detectors"].values() if m["auroc"] is not None)
    assert best >= 0.90, metrics["detectors"]
    assert metrics["noise"]["real_rate"] == pytest.approx(0.3, abs=0.02)


def test_imagefolder_run(tmp_path):
    from PIL import Image

    from auditor.datasets.synth_faces import CLASSES, generate

    images, labels = generate(84, seed=4, size=40)
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        split = "test" if i % 4 == 0 else "train"
        path = tmp_path / "data" / split / CLASSES[y] / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
    result = run_cli(
        "run",
        "imagefolder",
        "--root",
        str(tmp_path / "data"),
        "--epochs",
        "1",
        "--image-size",
        "24",
        "--noise-rate",
        "0.2",
        "--out",
        str(tmp_path / "out"),
    )
    run_dir = last_line_dir(result)
    df = pq.read_table(run_dir / "samples.parquet").to_pandas()
    assert len(df) == 63 and df["sample_id"].str.startswith("train/").all()
    assert Path(df["filepath"].iloc[0]).is_file()


def test_weights_from_an_msceleb_style_checkpoint(rafdb_root, tmp_path):
    import torch
    import torchvision

    state = torchvision.models.resnet18(weights=None).state_dict()
    good = tmp_path / "resnet18_msceleb.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, good)
    common = [
        "run",
        "raf-db",
        "--root",
        str(rafdb_root),
        "--backbone",
        "resnet18",
        "--method",
        "ce",
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--out",
        str(tmp_path / "out"),
    ]
    result = run_cli(*common, "--weights", str(good))
    run_dir = last_line_dir(result)
    assert "matched 100/100 backbone tensors" in result.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["weights"]["matched"] == 100
    # the frozen pre-trained features are read beside the fine-tuned method and scored
    assert "audit: frozen: the --weights backbone's frozen features" in result.stderr
    frozen = json.loads((run_dir / "metrics.json").read_text())["frozen_features"]
    assert 0.0 <= frozen["accuracy"] <= 1.0 and isinstance(frozen["in_ensemble"], bool)
    columns = set(pq.read_schema(run_dir / "samples.parquet").names)
    assert {"score_frozen_self_confidence", "score_frozen_knn"} <= columns

    bad = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), bad)
    refused = run_cli(*common, "--weights", str(bad))
    assert refused.returncode == 2 and "backbone tensors" in refused.stderr
    assert len(list((tmp_path / "out" / "raf-db").iterdir())) == 1  # no folder for the refused run


CL_FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "cl-cifar10"
# Published precision / recall / F1 per filter (fixtures/cl-cifar10/README.md)
CL_PUBLISHED = {
    "noise_0.2_sparsity_0.0": [
        (0.650, 0.935, 0.767),
        (0.675, 0.926, 0.781),
        (0.670, 0.857, 0.752),
        (0.557, 0.975, 0.709),
    ],
    "noise_0.2_sparsity_0.6": [
        (0.679, 0.937, 0.787),
        (0.692, 0.898, 0.782),
        (0.699, 0.876, 0.777),
        (0.577, 0.970, 0.724),
    ],
    "noise_0.4_sparsity_0.0": [
        (0.819, 0.883, 0.850),
        (0.820, 0.866, 0.842),
        (0.789, 0.903, 0.842),
        (0.741, 0.970, 0.840),
    ],
    "noise_0.4_sparsity_0.6": [
        (0.786, 0.815, 0.800),
        (0.786, 0.780, 0.783),
        (0.772, 0.809, 0.790),
        (0.700, 0.901, 0.788),
    ],
    "noise_0.7_sparsity_0.0": [
        (0.840, 0.632, 0.721),
        (0.837, 0.606, 0.703),
        (0.818, 0.835, 0.827),
        (0.817, 0.843, 0.830),
    ],
}
CL_AUROC = {
    "noise_0.2_sparsity_0.0": (0.953, 0.946),
    "noise_0.4_sparsity_0.0": (0.924, 0.923),
    "noise_0.7_sparsity_0.0": (0.747, 0.762),
}
FILTERS = ["cleanlab", "cleanlab_both", "cleanlab_confident_learning", "predicted_neq_given"]


@pytest.mark.skipif(not CL_FIXTURE.is_dir(), reason="needs ../shared/fixtures/cl-cifar10")
@pytest.mark.parametrize("setting", list(CL_PUBLISHED))
def test_score_reproduces_confident_learning_cifar10(setting, tmp_path):
    d = CL_FIXTURE / setting
    result = run_cli(
        "score",
        "--pred-probs",
        str(d / "pred_probs.npy"),
        "--labels",
        str(d / "noisy_labels.npy"),
        "--true-labels",
        str(d / "true_labels.npy"),
        "--out",
        str(tmp_path),
    )
    metrics = json.loads((last_line_dir(result) / "metrics.json").read_text())["detectors"]
    for name, (precision, recall, f1) in zip(FILTERS, CL_PUBLISHED[setting], strict=True):
        m = metrics[name]
        assert (m["precision"], m["recall"], m["f1"]) == pytest.approx(
            (precision, recall, f1), abs=0.005
        ), name
    if setting in CL_AUROC:
        sc, nm = CL_AUROC[setting]
        assert metrics["self_confidence"]["auroc"] == pytest.approx(sc, abs=0.005)
        assert metrics["normalized_margin"]["auroc"] == pytest.approx(nm, abs=0.005)


def test_compare_cli_over_two_runs(tmp_path):
    runs = []
    for seed in ("1", "2"):
        result = run_cli(
            "run",
            "demo",
            "--method",
            "ce",
            "--limit",
            "300",
            "--epochs",
            "1",
            "--seed",
            seed,
            "--out",
            str(tmp_path),
        )
        runs.append(str(last_line_dir(result)))
    result = run_cli("compare", *runs, "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    assert "ce_aum" in result.stdout and "test accuracy" in result.stdout
    assert (tmp_path / "cmp.csv").is_file() and (tmp_path / "cmp-pr.png").is_file()


def test_aum_threshold_samples_make_aum_decide(tmp_path):
    result = run_cli(
        "run",
        "demo",
        "--method",
        "ce",
        "--limit",
        "600",
        "--epochs",
        "3",
        "--aum-threshold",
        "--out",
        str(tmp_path),
    )
    run_dir = last_line_dir(result)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    aum = metrics["detectors"]["ce_aum"]
    assert (
        aum["flagged"] > 0 and aum["precision"] > metrics["noise"]["real_rate"]
    )  # better than chance
    assert "flag_ce_aum" in pq.read_table(run_dir / "samples.parquet").schema.names


def test_no_rule_reads_the_truth(rafdb_root, tmp_path):
    """The same given labels with a shuffled truth (the training rows' labels in the label file
    permuted; the noise file, which gives the labels, and the test split unchanged): every score,
    flag, suggestion and ensemble decision is the same; only the evaluation differs."""
    import shutil

    shuffled = tmp_path / "shuffled"
    shutil.copytree(rafdb_root, shuffled)
    label_file = shuffled / "EmoLabel/list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    train = [i for i, line in enumerate(lines) if line.startswith("train_")]
    labels = [lines[i].split()[1] for i in train]
    permuted = np.random.default_rng(0).permutation(labels)
    for i, label in zip(train, permuted, strict=True):
        lines[i] = f"{lines[i].split()[0]} {label}"
    label_file.write_text("\n".join(lines) + "\n")
    frames, ensembles = [], []
    for root in (rafdb_root, shuffled):
        result = run_cli(
            "run",
            "raf-db",
            "--root",
            str(root),
            "--noise-file",
            str(rafdb_root / "noise03.txt"),
            "--epochs",
            "3",
            "--image-size",
            "32",
            "--out",
            str(tmp_path / f"out-{root.name}"),
            "--no-report",
        )
        run_dir = last_line_dir(result)
        frames.append(pq.read_table(run_dir / "samples.parquet").to_pandas())
        ensembles.append(json.loads((run_dir / "metrics.json").read_text())["ensemble"])
    assert not frames[0]["true_label"].equals(frames[1]["true_label"])
    decided = [c for c in frames[0].columns if c.startswith(("score_", "flag_", "suggested"))]
    assert "suspicion" in frames[0] and "flag_suspicion" in decided
    for column in ["suspicion", *decided]:
        assert frames[0][column].equals(frames[1][column]), column
    assert ensembles[0] == ensembles[1]
