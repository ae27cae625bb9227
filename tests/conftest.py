import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUDIT = Path(sys.executable).parent / "audit"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """The test session decodes into its own cache folder and keeps FiftyOne datasets in its own
    MongoDB (`own_mongod`), never the user's."""
    base = tmp_path_factory.getbasetemp()
    # made now: a base folder whose only sub-folders are tests' folders of images would look
    # like an image folder's classes to the write guard (auditor.dataset_layouts)
    (base / "cache").mkdir(exist_ok=True)
    os.environ["AUDIT_CACHE_DIR"] = str(base / "cache")
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
    with own_mongod(base / "fiftyone-db") as uri:
        os.environ["FIFTYONE_DATABASE_URI"] = uri
        fiftyone = sys.modules.get("fiftyone")
        if fiftyone is not None:  # imported while collecting, its configuration read before
            fiftyone.config.database_uri = uri
        yield


@contextlib.contextmanager
def own_mongod(folder: Path) -> Iterator[str]:
    """FiftyOne's MongoDB on `folder` and a free loopback port, for this pytest process and the
    `audit` processes it starts (FIFTYONE_DATABASE_URI): FiftyOne's own service is shared by
    every process of the user whatever its database folder, so two pytest-xdist workers (or two
    test sessions) each with its own folder wrote to one another's databases."""
    from importlib.util import find_spec

    mongod = Path(find_spec("fiftyone").origin).parent / "db" / "bin" / "mongod"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [str(mongod), "--dbpath", str(folder), "--port", str(port), "--bind_ip", "127.0.0.1"]
        + ["--nounixsocket", "--logpath", str(folder / "mongod.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while not port_open(port):
            assert server.poll() is None and time.time() < deadline, "mongod did not start"
            time.sleep(0.1)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_worker():
    """Under pytest-xdist (`make test` runs two workers on two cores) every worker and the `audit`
    processes it starts compute on one thread: two workers of two threads each on two cores ran
    the same tests 20-25% slower (measured: two concurrent cross-fitted runs, 50 s vs 39 s)."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


TRACEBACK = "Traceback (most recent call last)"
UNEXPECTED = "audit: unexpected error"  # auditor.crash: what a caught traceback becomes


def assert_no_traceback(stderr: str, args: object, crash_expected: bool = False) -> None:
    """The whole suite's check (issue 18): no `audit` call any test makes prints a Python
    traceback, whatever it is fed, nor (unless the test provokes one on purpose) an unexpected
    error, which `auditor.crash` turns from a traceback into one sentence: anything a test feeds
    the tool is input, answered by a result or a refusal (exit 2)."""
    assert TRACEBACK not in stderr, f"`audit {args}` printed a traceback:\n{stderr[-4000:]}"
    if not crash_expected:
        assert UNEXPECTED not in stderr, f"`audit {args}` failed unexpectedly:\n{stderr[-4000:]}"


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: int = 900,
    crash_expected: bool = False,
):
    """The real `audit` console script in a subprocess; fails the test if it printed a Python
    traceback or an unexpected error (`assert_no_traceback`)."""
    full_env = os.environ | (env or {})
    result = subprocess.run(
        [str(AUDIT), *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert_no_traceback(result.stderr, " ".join(args), crash_expected)
    return result


CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (make test installs it)"
)


def chromium(profile: Path, *args: str, budget_ms: int = 5000, timeout: int = 120):
    """Headless Chromium with a fresh profile folder; `budget_ms` of virtual time to render."""
    return subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--virtual-time-budget={budget_ms}",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def served_app(run_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    """`audit review RUN_DIR --port PORT` in its own process group, once the App answers on
    127.0.0.1 (within 180 s); stopped with SIGINT (SIGKILL after 30 s) on leaving."""
    import urllib.request

    app = subprocess.Popen(
        [str(AUDIT), "review", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
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
        yield app
    finally:
        os.killpg(app.pid, signal.SIGINT)
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
