"""Dataset loaders behind one entry point: a registry name in, a SampleTable out."""

from __future__ import annotations

from pathlib import Path

from auditor.datasets import (
    affectnet,
    csv_labels,
    fashion_mnist,
    ferplus,
    imagefolder,
    rafdb,
    synth_faces,
)
from auditor.datasets.registry import DatasetEntry
from auditor.datasets.table import SampleTable
from auditor.errors import UserError

LOADERS = {
    "fashion-mnist": fashion_mnist,
    "synth-faces": synth_faces,
    "raf-db": rafdb,
    "imagefolder": imagefolder,
    "ferplus": ferplus,
    "affectnet": affectnet,
    "csv": csv_labels,
}


def loader_for(entry: DatasetEntry):
    if entry.kind not in LOADERS:
        raise UserError(
            f"dataset {entry.name!r} has unknown kind {entry.kind!r}; known: {', '.join(LOADERS)}"
        )
    return LOADERS[entry.kind]


def load_dataset(
    entry: DatasetEntry,
    *,
    root: str | Path | None = None,
    noise_file: str | Path | None = None,
    seed: int = 0,
) -> SampleTable:
    """The dataset's table; `seed` draws FERPlus's annotator labels."""
    loader = loader_for(entry)
    resolved = entry.resolve_root(root)
    if loader is ferplus:
        return ferplus.load(entry, resolved, seed=seed)
    if noise_file is not None:
        if loader is not rafdb:
            raise UserError(
                f"--noise-file is read by the raf-db loader only, not by {entry.kind!r}"
            )
        return rafdb.load(entry, resolved, noise_file=Path(noise_file))
    return loader.load(entry, resolved)


def load_for_run(manifest: dict) -> tuple[DatasetEntry, SampleTable]:
    """The dataset of a finished run, loaded as the run loaded it (root, noise file, seed and
    --labels from its manifest). Refuses when the run's samples are no longer all there."""
    from auditor.datasets.registry import get_entry, load_registry
    from auditor.labelfiles import with_labels

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
    resolved = entry.resolve_root(root)
    found, detail = loader_for(entry).status(entry, resolved)
    return resolved, found, detail
