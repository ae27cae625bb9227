import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUDIT = Path(sys.executable).parent / "audit"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """The test session decodes into its own cache folder, never the user's."""
    os.environ["AUDIT_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "cache")


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
