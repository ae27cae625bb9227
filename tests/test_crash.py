"""An unexpected error (a bug, the machine) is one sentence and a saved traceback, exit 1; and
the suite's own check that no `audit` call prints a traceback (tests/conftest.py) can fail."""

import signal
import subprocess

import pytest

from auditor import cli, commands
from tests.conftest import AUDIT, TRACEBACK, assert_no_traceback


def broken(args) -> int:
    raise RuntimeError("the disk caught fire")


def test_an_unexpected_error_is_one_sentence_and_a_saved_traceback(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("AUDIT_DEBUG", raising=False)
    monkeypatch.setattr(commands, "cmd_datasets", broken)
    assert cli.main(["datasets"]) == 1
    err = capsys.readouterr().err
    assert TRACEBACK not in err
    assert "audit: unexpected error: RuntimeError: the disk caught fire" in err
    (report,) = (tmp_path / "crashes").iterdir()
    assert str(report) in err
    text = report.read_text()
    assert TRACEBACK in text and "in broken" in text and "the disk caught fire" in text


def test_audit_debug_lets_the_traceback_through(monkeypatch, tmp_path):
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("AUDIT_DEBUG", "1")
    monkeypatch.setattr(commands, "cmd_datasets", broken)
    with pytest.raises(RuntimeError, match="caught fire"):
        cli.main(["datasets"])


def test_an_unwritable_crash_folder_still_gives_one_sentence(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(blocker))  # crashes/ cannot be made under a file
    monkeypatch.delenv("AUDIT_DEBUG", raising=False)
    monkeypatch.setattr(commands, "cmd_datasets", broken)
    assert cli.main(["datasets"]) == 1
    err = capsys.readouterr().err
    assert TRACEBACK not in err and "rerun with AUDIT_DEBUG=1" in err


def test_the_suite_check_fails_on_a_traceback():
    with pytest.raises(AssertionError, match="printed a traceback"):
        assert_no_traceback(f"{TRACEBACK}:\n  File ...\nValueError: x\n", "run demo")
    with pytest.raises(AssertionError, match="failed unexpectedly"):
        assert_no_traceback("audit: unexpected error: ValueError: x\n", "run demo")
    assert_no_traceback("audit: unexpected error: ValueError: x\n", "run", crash_expected=True)
    assert_no_traceback("audit: error: --lr nan: must be a number\n", "run demo")


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    """`audit datasets | head -1`: the pipe closes before audit writes; exit 128 + SIGPIPE,
    nothing on stderr."""
    process = subprocess.Popen(
        [str(AUDIT), "datasets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()  # before audit has imported anything, let alone written
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 128 + signal.SIGPIPE
    assert stderr == ""
