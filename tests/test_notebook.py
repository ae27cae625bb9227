"""docs/python-api.ipynb, executed as a reader would run it (nbclient, a fresh kernel), so it
never goes stale: every cell runs without an error, the suspects come out as a DataFrame and a
figure, and the result opens in FiftyOne (the App itself is not launched)."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "python-api.ipynb"


def kernel(data_dir: Path) -> str:
    """A kernel spec of this interpreter (the one `auditor` is installed in) under the Jupyter
    data folder `data_dir`: a `python3` spec of the user's or the system's could start another
    Python."""
    spec = data_dir / "kernels" / "audit-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "audit", "language": "python"})
    )
    return spec.name


def execute(path: Path, cwd: Path, kernel_name: str, timeout: int = 600) -> nbformat.NotebookNode:
    """The notebook at `path`, every cell executed in `cwd` by a fresh kernel `kernel_name`."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": cwd}}
    ).execute()
    return notebook


@pytest.mark.slow
def test_the_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIT_NOTEBOOK_OUT", str(tmp_path / "reports"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    notebook = execute(NOTEBOOK, tmp_path, kernel(tmp_path / "jupyter"))
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    kinds = {kind for o in outputs for kind in o.get("data", {})}
    assert {"text/html", "image/png"} <= kinds  # the suspects' DataFrame and their figure
    text = "".join(o.get("text", "") for o in outputs)
    assert "samples flagged" in text and "saved views: " in text
    assert list((tmp_path / "reports" / "demo").glob("*/suspects.csv"))
