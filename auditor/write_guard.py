"""Where a command may write a file a user named (`--out`): never into a dataset's root, never
over a file of a run folder, never over the label file a run trained on.

A run folder is any folder holding a `manifest.json` with a `run_id`; a command may rewrite in
one only the files it owns itself (`own`, e.g. `relabel-reviewed.csv` for `audit export`). Each
refusal is a `UserError` (exit 2) that names the path and what to do, raised before anything is
written.
"""

from __future__ import annotations

import json
from pathlib import Path

from auditor.errors import UserError


def run_folder_of(path: Path) -> Path | None:
    """The run folder `path` lies in (at any depth), or None."""
    for folder in path.parents:
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                if "run_id" in json.loads(manifest.read_text(encoding="utf-8")):
                    return folder
            except (ValueError, UnicodeDecodeError, OSError):
                return folder  # a damaged run folder is still a run folder
    return None


def check_out(
    out: Path,
    *,
    flag: str = "--out",
    dataset_root: Path | None = None,
    labels_file: str | None = None,
    own: tuple[str, ...] = (),
) -> Path:
    """Refuse `out` (see the module docstring); return it resolved."""
    target = Path(out).expanduser().resolve()
    if str(out).strip() == "" or target.is_dir():
        raise UserError(f"{flag} {str(out)!r} is a folder, not a file: name a new file")
    if labels_file and target == Path(labels_file).expanduser().resolve():
        raise UserError(f"{flag} {out} is the label file the run trained on; write to a new file")
    if dataset_root is not None:
        root = Path(dataset_root).expanduser().resolve()
        if target.is_relative_to(root):
            raise UserError(
                f"{flag} {out} is inside the dataset's root {root}; the original labels are "
                "never modified, and a new file there could be taken for data: write outside it"
            )
    run = run_folder_of(target)
    if run is not None and target.exists() and not (target.parent == run and target.name in own):
        raise UserError(
            f"{flag} {out} would overwrite {target.name}, a file of the run folder {run}; "
            "write to a new file"
        )
    return target
