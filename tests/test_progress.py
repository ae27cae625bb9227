"""Progress in logs (auditor.progress): with stderr not a terminal, a line at most every interval
and one at the end, instead of tqdm's bar."""

import io
import os
import re
import subprocess

import pytest

from auditor.errors import UserError
from auditor.progress import LogProgress, clock, log_interval
from tests.conftest import AUDIT, REPO, assert_no_traceback

LINE = re.compile(r"^audit: ce: [\d,]+/[\d,]+ img \(\d+%\), [\d,]+ img/s, ETA \d+:\d\d$", re.M)
END = re.compile(r"^audit: ce: ([\d,]+)/([\d,]+) img in \d+:\d\d \([\d,]+ img/s\)$", re.M)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_line_at_most_every_interval_with_rate_and_eta_and_one_at_the_end():
    out, now = io.StringIO(), FakeClock()
    with LogProgress(1000, "ce", "img", 30.0, out, now) as bar:
        for _ in range(10):  # 100 images every 10 s: lines at 30, 60 and 90 s
            now.t += 10
            bar.update(100)
    lines = out.getvalue().splitlines()
    assert lines == [
        "audit: ce: 300/1,000 img (30%), 10 img/s, ETA 1:10",
        "audit: ce: 600/1,000 img (60%), 10 img/s, ETA 0:40",
        "audit: ce: 900/1,000 img (90%), 10 img/s, ETA 0:10",
        "audit: ce: 1,000/1,000 img in 1:40 (10 img/s)",
    ]


def test_a_stage_that_fails_or_did_nothing_prints_no_end_line():
    out = io.StringIO()
    with pytest.raises(KeyError), LogProgress(10, "ce", "img", 30.0, out) as bar:
        bar.update(1)
        raise KeyError
    with LogProgress(10, "ce", "img", 30.0, out):
        pass
    assert out.getvalue() == ""


def test_clock_and_the_interval_from_the_environment(monkeypatch):
    assert [clock(7), clock(754), clock(3723)] == ["0:07", "12:34", "1:02:03"]
    monkeypatch.delenv("AUDIT_PROGRESS_SECONDS", raising=False)
    assert log_interval() == 30.0
    monkeypatch.setenv("AUDIT_PROGRESS_SECONDS", "0.5")
    assert log_interval() == 0.5
    for bad in ("abc", "0", "-1", "nan", "inf"):
        monkeypatch.setenv("AUDIT_PROGRESS_SECONDS", bad)
        with pytest.raises(UserError, match="AUDIT_PROGRESS_SECONDS must be a positive number"):
            log_interval()


@pytest.mark.slow
def test_a_run_logging_to_a_file_prints_periodic_progress_lines(tmp_path):
    log = tmp_path / "stderr.log"
    args = ["run", "demo", "--method", "ce", "--limit", "300", "--epochs", "3"]
    env = os.environ | {"AUDIT_PROGRESS_SECONDS": "0.2"}
    with open(log, "w") as stderr:
        done = subprocess.run(
            [str(AUDIT), *args, "--out", str(tmp_path / "out")],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
    text = log.read_text()
    assert_no_traceback(text, args)
    assert done.returncode == 0, text[-2000:]
    assert len(LINE.findall(text)) >= 2, text[-2000:]
    (end,) = END.findall(text)
    assert end == ("900", "900")  # 300 images x 3 epochs
    assert "\r" not in text  # no bar redrawn into the log

    bad = subprocess.run(
        [str(AUDIT), *args, "--out", str(tmp_path / "bad")],
        cwd=REPO,
        env=os.environ | {"AUDIT_PROGRESS_SECONDS": "soon"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "AUDIT_PROGRESS_SECONDS must be" in bad.stderr
    assert not (tmp_path / "bad").exists()
