import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUDIT = Path(sys.executable).parent / "audit"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """The test session decodes into its own cache folder and keeps FiftyOne datasets in its own
    MongoDB, never the user's."""
    base = tmp_path_factory.getbasetemp()
    os.environ["AUDIT_CACHE_DIR"] = str(base / "cache")
    os.environ["FIFTYONE_DATABASE_DIR"] = str(base / "fiftyone-db")
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 900):
    """The real `audit` console script in a subprocess."""
    full_env = os.environ | (env or {})
    return subprocess.run(
        [str(AUDIT), *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (make test installs it)"
)


def chromium(profile: Path, *args: str, budget_ms: int = 5000, timeout: int = 120):
    """Headless Chromium with a fresh profile folder; `budget_ms` of virtual time to render."""
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
