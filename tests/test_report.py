"""report.html opened in headless Chromium: every figure loads and the page is not blank."""

import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import chromium, needs_chromium, run_cli
from tests.test_cli_e2e import last_line_dir

pytestmark = pytest.mark.slow


@needs_chromium
def test_report_figures_load_in_chromium(tmp_path):
    run_dir = last_line_dir(
        run_cli("run", "demo", "--limit", "800", "--epochs", "2", "--out", str(tmp_path))
    )
    report = run_dir / "report.html"
    text = report.read_text()
    for title in (
        "Test accuracy",
        "Memorisation",
        "Loss of clean and noisy samples",
        "Precision-recall per detector",
        "Embedding map",
        "Top suspects and their CAMs",
        "given vs suggested",
    ):
        assert title in text, title
    dom = chromium(tmp_path / "profile", "--dump-dom", report.as_uri()).stdout
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    assert loaded and total, dom[-500:]
    assert int(total.group(1)) == 7 and loaded.group(1) == total.group(1)
    shot = tmp_path / "report.png"
    chromium(
        tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri()
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.01  # figures and text, not a blank page


def test_report_without_truth_says_what_is_left_out(tmp_path):
    root = tmp_path / "RAF"
    assert run_cli("synth-faces", str(root), "--train", "70", "--test", "21").returncode == 0
    run_dir = last_line_dir(
        run_cli(
            "run",
            "raf-db",
            "--root",
            str(root),
            "--method",
            "ce",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--out",
            str(tmp_path / "o"),
        )
    )
    text = (run_dir / "report.html").read_text()
    assert text.count("Left out: the true labels are unknown") == 2
    assert (
        "<b>ce</b>: No sign of memorisation" in text
    )  # one epoch, the verdict from accuracy alone
    assert "Embedding map" in text
