"""The user's machine and environment, not a bug (issue 32): a path through `~nosuchuser` or a
symlink loop, a cache folder that is a file, under /proc, empty (the current folder, here a
dataset's root) or unwritable, a plug-in that fails to import or registers a name twice, a
manifest that cannot be read, an output folder that cannot be written, a path of 4,600 bytes,
an AUDIT_DEBUG that is not a boolean: each is exit 2 and one sentence saying what to fix (not
"unexpected error" and a crash report), and nothing is written. Many cases per process
(`tests.hostile.run_batch`); the permission cases run without root's capabilities."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from auditor import cli, commands
from tests.hostile import Case, csv_dataset, digest, refused, run_batch

pytestmark = pytest.mark.slow

PLUGINS = {
    "raising_plugin": "raise RuntimeError('the plug-in is broken')\n",
    "syntax_plugin": "def broken(:\n",
    "twice_plugin": (
        "from auditor.datasets.kinds import DatasetKind, register_kind\n"
        "register_kind(DatasetKind(name='csv', load=None, status=None))\n"
    ),
}


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> dict:
    """A registered csv dataset `mine`, one run folder (of `audit score`: the cheapest), the
    probabilities it scored, plug-ins that fail, a symlink loop and a file; everything the
    cases name, and the environment naming the registry and the plug-ins' folder."""
    base = tmp_path_factory.mktemp("environment")
    root, env = csv_dataset(base)
    np.save(base / "probs.npy", np.full((4, 2), 0.5))
    np.save(base / "labels.npy", np.array([0, 1, 0, 1]))
    plugins = base / "plugins"
    plugins.mkdir()
    for name, text in PLUGINS.items():
        (plugins / f"{name}.py").write_text(text)
    env |= {"PYTHONPATH": str(plugins)}
    (result,) = run_batch([Case([*score(base), "--out", str(base / "o")])], env=env)
    assert result.returncode == 0, result.stderr
    (run,) = (base / "o" / "score").iterdir()
    (base / "loop").symlink_to(base / "loop")
    (base / "a-file").write_text("not a folder\n")
    (base / "~.yaml").write_text("far:\n  kind: csv\n  root: ~nosuchuser/data\n")
    return {"base": base, "root": root, "run": run, "env": env}


def score(base: Path) -> list[str]:
    return ["score", "--pred-probs", str(base / "probs.npy"), "--labels", str(base / "labels.npy")]


def one_sentence(result, *needles: str) -> None:
    """Refused (exit 2, every needle named, no traceback) in one line of at most 400 characters:
    a sentence, however long the path it names."""
    refused(result, *needles)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 400, result.stderr


def test_environment_problems_are_one_sentence_not_a_crash(machine):
    base, root, run = machine["base"], machine["root"], machine["run"]
    long_path = base.joinpath(*["a" * 200] * 23, "out")  # 4,600 bytes
    quick = ["--method", "ce", "--epochs", "1", "--image-size", "16", "--no-report"]
    run_mine = ["run", "mine", *quick, "--out", str(base / "runs")]
    cases = {
        "~user --out": (
            Case([*score(base), "--out", "~nosuchuser/o"]),
            ["--out ~nosuchuser/o", "names no home folder"],
        ),
        "~user synth-faces": (
            Case(["synth-faces", "~nosuchuser/faces"]),
            ["synth-faces OUT ~nosuchuser/faces", "names no home folder"],
        ),
        "~user --root": (
            Case(["run", "mine", "--root", "~nosuchuser/data", *quick]),
            ["--root ~nosuchuser/data", "names no home folder"],
        ),
        "~user export": (
            Case(["export", str(run), "--out", "~nosuchuser/x.csv"]),
            ["--out ~nosuchuser/x.csv", "names no home folder"],
        ),
        "~user registry": (
            Case(
                ["synth-faces", str(base / "faces")], env={"AUDIT_DATASETS": str(base / "~.yaml")}
            ),
            ["the root of dataset 'far' ~nosuchuser/data", "names no home folder"],
        ),
        "--root loop": (
            Case(["run", "mine", "--root", str(base / "loop"), *quick]),
            [f"{base / 'loop'} cannot be resolved (a symbolic link loop)"],
        ),
        "--out loop": (
            Case([*score(base), "--out", str(base / "loop" / "o")]),
            ["--out", "cannot be resolved (a symbolic link loop)"],
        ),
        "cache a file": (
            Case(run_mine, env={"AUDIT_CACHE_DIR": str(base / "a-file")}),
            ["AUDIT_CACHE_DIR", "is a file, not a folder"],
        ),
        "cache /proc/self": (
            Case(run_mine, env={"AUDIT_CACHE_DIR": "/proc/self"}),
            ["AUDIT_CACHE_DIR /proc/self is under /proc"],
        ),
        "cache empty in a root": (
            Case(run_mine, env={"AUDIT_CACHE_DIR": ""}, cwd=root),
            ["AUDIT_CACHE_DIR is set but empty"],
        ),
        "cache . in a root": (
            Case(run_mine, env={"AUDIT_CACHE_DIR": "."}, cwd=root),
            ["AUDIT_CACHE_DIR . is inside the dataset's root"],
        ),
        "plug-in raises": (
            Case(["datasets"], env={"AUDIT_PLUGINS": "raising_plugin"}),
            ["'raising_plugin'", "RuntimeError: the plug-in is broken", "fix it"],
        ),
        "plug-in syntax": (
            Case(["datasets"], env={"AUDIT_PLUGINS": "syntax_plugin"}),
            ["'syntax_plugin'", "SyntaxError", "fix it"],
        ),
        "plug-in twice": (
            Case(["datasets"], env={"AUDIT_PLUGINS": "twice_plugin"}),
            ["'twice_plugin'", "dataset kind 'csv' is already registered"],
        ),
        "4,600 bytes": (
            Case([*score(base), "--out", str(long_path)]),
            ["--out", "...", "File name too long"],
        ),
        "AUDIT_DEBUG maybe": (
            Case(["datasets"], env={"AUDIT_DEBUG": "maybe"}),
            ["AUDIT_DEBUG must be 1, true, yes or on", "not 'maybe'"],
        ),
        "AUDIT_DEBUG false": (  # read as off: one sentence, no traceback
            Case(["export", str(run), "--out", "~nosuchuser/x.csv"], env={"AUDIT_DEBUG": "false"}),
            ["names no home folder"],
        ),
    }
    before = digest(base)
    results = run_batch([case for case, _ in cases.values()], env=machine["env"])
    for result, (_, needles) in zip(results, cases.values(), strict=True):
        one_sentence(result, *needles)
    assert digest(base) == before  # no cache, no run folder, no crash report anywhere


def unprivileged() -> tuple[str, ...]:
    """The prefix that runs a command subject to file permissions: none for a user, `setpriv`
    without capabilities for root (who reads and writes anything otherwise)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: file permissions cannot be made to hold")
    return ("setpriv", "--bounding-set=-all", "--inh-caps=-all")


def test_permission_problems_are_one_sentence_not_a_crash(machine, tmp_path):
    """A manifest nobody may read, an output folder, a run's folder and a cache folder nobody
    may write: what to fix, exit 2, nothing written."""
    locked = tmp_path / "locked-run"
    shutil.copytree(machine["run"], locked)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    base = machine["base"]
    quick = ["--method", "ce", "--epochs", "1", "--image-size", "16", "--no-report"]
    cases = {
        "export": (Case(["export", str(locked)]), [f"{locked / 'manifest.json'}: permission"]),
        "compare": (
            Case(["compare", str(locked), "--out", str(tmp_path / "c")]),
            [f"{locked / 'manifest.json'}: permission denied"],
        ),
        "--resume": (Case(["run", "--resume", str(locked)]), ["manifest.json: permission denied"]),
        "score --out": (
            Case([*score(base), "--out", str(read_only)]),
            [f"--out {read_only} is a folder that cannot be written"],
        ),
        "export --out": (
            Case(["export", str(machine["run"]), "--out", str(read_only / "x.csv")]),
            [f"the folder {read_only} is not writable"],
        ),
        "compare --out": (
            Case(["compare", str(machine["run"]), "--out", str(read_only / "c")]),
            [f"the folder {read_only} is not writable"],
        ),
        "synth-faces": (
            Case(["synth-faces", str(read_only / "faces")]),
            [f"the folder {read_only} is not writable"],
        ),
        "run --out": (
            Case(["run", "mine", *quick, "--out", str(read_only)]),
            [f"--out {read_only} is a folder that cannot be written"],
        ),
        "cache": (
            Case(["run", "mine", *quick, "--out", str(tmp_path / "o")]),
            [f"AUDIT_CACHE_DIR {read_only} is a folder that cannot be written"],
        ),
    }
    cases["cache"][0].env["AUDIT_CACHE_DIR"] = str(read_only)
    (locked / "manifest.json").chmod(0)
    read_only.chmod(0o555)
    try:
        before = digest(machine["base"]), digest(read_only)
        results = run_batch(
            [case for case, _ in cases.values()], env=machine["env"], prefix=unprivileged()
        )
        for result, (_, needles) in zip(results, cases.values(), strict=True):
            one_sentence(result, *needles)
        assert (digest(machine["base"]), digest(read_only)) == before
        assert not (tmp_path / "o").exists() and not list(tmp_path.glob("c*"))
    finally:
        read_only.chmod(0o755)
        (locked / "manifest.json").chmod(0o644)


def broken(args) -> int:
    raise RuntimeError("a bug")


@pytest.mark.parametrize(
    ("value", "outcome"),
    [
        *[(v, 1) for v in ("", "0", "false", "No", "OFF")],
        *[(v, "raised") for v in ("1", "true", "Yes", "ON")],
        ("maybe", 2),
    ],
)
def test_audit_debug_is_read_as_a_boolean(monkeypatch, tmp_path, capsys, value, outcome):
    """1/true/yes/on show the traceback, 0/false/no/off/empty do not (one sentence, exit 1),
    anything else is refused naming the variable (exit 2)."""
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("AUDIT_DEBUG", value)
    monkeypatch.setattr(commands, "cmd_datasets", broken)
    if outcome == "raised":
        with pytest.raises(RuntimeError, match="a bug"):
            cli.main(["datasets"])
        return
    assert cli.main(["datasets"]) == outcome
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert ("AUDIT_DEBUG must be" in err) == (outcome == 2)
