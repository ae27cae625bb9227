"""Dataset loaders behind one entry point: a registry name in, a SampleTable out.

Each loader module declares its kind with `register_kind` (see `auditor.datasets.kinds`, which
also writes down the loader interface); importing the package imports the built-in ones.
"""

from __future__ import annotations

from pathlib import Path

from auditor.datasets import (  # noqa: F401 - imported for their register_kind calls
    affectnet,
    csv_labels,
    fashion_mnist,
    ferplus,
    imagefolder,
    rafdb,
    synth_faces,
)
from auditor.datasets.corrected import with_labels
from auditor.datasets.kinds import KINDS, kind_for
from auditor.datasets.registry import DatasetEntry, get_entry, load_registry
from auditor.datasets.table import SampleTable, refuse_unusable
from auditor.errors import UserError


def load_dataset(
    entry: DatasetEntry,
    *,
    root: str | Path | None = None,
    noise_file: str | Path | None = None,
    seed: int = 0,
) -> SampleTable:
    """The dataset's table. The run-time inputs go to the kinds that declare them: `noise_file`
    (refused for a kind that reads none, rather than silently ignored) and `seed` (FERPlus draws
    its annotator labels with it)."""
    kind = kind_for(entry)  # looked up now: late plug-ins are found
    inputs: dict[str, object] = {}
    if kind.reads_noise_file:
        inputs["noise_file"] = None if noise_file is None else Path(noise_file)
    elif noise_file is not None:
        readers = ", ".join(k.name for k in KINDS.values() if k.reads_noise_file)
        raise UserError(f"--noise-file is read by the {readers} loader only, not by {entry.kind!r}")
    if kind.reads_seed:
        inputs["seed"] = seed
    resolved = entry.resolve_root(root)
    table = kind.load(entry, resolved, **inputs)
    refuse_unusable(table, f"dataset {entry.name!r} ({resolved or entry.kind})")
    return table


def load_for_run(manifest: dict) -> tuple[DatasetEntry, SampleTable]:
    """The dataset of a finished run, loaded as the run loaded it (root, noise file, seed and
    --labels from its manifest). Refuses when the run's samples are no longer all there."""
    if "dataset_kind" not in manifest:
        raise UserError(
            f"run {manifest.get('run_id')} has no dataset (it came from `audit score`): "
            "there are no images or label files to work on"
        )
    config = manifest.get("config", {})
    entry = get_entry(manifest["dataset"], load_registry())
    table = load_dataset(
        entry,
        root=config.get("root"),
        noise_file=config.get("noise_file"),
        seed=config.get("seed", 0),
    )
    if config.get("labels"):
        table, _ = with_labels(table, Path(config["labels"]), entry.kind)
    return entry, table


def dataset_status(
    entry: DatasetEntry, root: str | Path | None = None
) -> tuple[Path | None, bool, str]:
    """(the resolved root, whether the dataset's files are there, a short detail), for
    `audit datasets`."""
    resolved = entry.resolve_root(root)
    kind = kind_for(entry)
    try:
        found, detail = kind.status(entry, resolved)
    except OSError as err:  # unreadable files: a listing, not a load, so it says so
        return resolved, False, f"cannot read {err.filename or resolved}: {err.strerror}"
    return resolved, found, detail
