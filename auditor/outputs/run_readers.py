"""Every command that opens a run folder reads it here, and each file is checked against what
`audit` writes before anything uses it: `manifest.json` (`MANIFEST`, for `--resume` also
`RESUMABLE`, and there the config `audit run` would accept: `auditor.resume`), `metrics.json`
(`METRICS`), `samples.parquet` (`auditor.outputs.tables.samples_problem`, against the manifest's
classes) and, when present, `embeddings.npy`, `cams.npz` and `near_duplicates.csv` (optional:
`audit score` and older runs have none). A file that is missing, unreadable or not of that
shape is refused with one sentence, `this run folder is damaged: <file> <what is wrong>`
(`DamagedRunFolder`, exit 2), never a traceback later. The writers are in
`auditor.outputs.run_folder`.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from auditor.csv_cells import restore_cell
from auditor.damage import (
    DamagedRunFolder,
    ListOf,
    MapOf,
    OneOf,
    Opt,
    brief,
    file_problem,
    run_file,
    shape_problem,
)
from auditor.errors import UserError
from auditor.outputs.tables import layout_problem, samples_problem

STATUSES = ("running", "interrupted", "failed", "complete")


NUMBER = (float, None)  # a number or null (a metric that could not be computed)


# What the commands read of manifest.json; a run of `audit score` has no dataset and no config.
MANIFEST = {
    "run_id": str,
    "status": OneOf(STATUSES),
    "dataset": str,
    "class_names": ListOf(str, nonempty=True),
    "n_train": Opt(int),
    "seed": Opt((int, None)),
    "dataset_kind": Opt(str),
    "config": Opt(
        {
            "seed": int,
            "root": Opt((str, None)),
            "noise_file": Opt((str, None)),
            "labels": Opt((str, None)),
        }
    ),
    "timings_s": Opt(MapOf(float)),
}


# What `audit run --resume` reads besides; the config is then checked as `audit run` checks it.
RESUMABLE = MANIFEST | {
    "dataset_kind": str,
    "config": MANIFEST["config"].shape,
    "dataset_fingerprint": str,
    "command": ListOf(str),
    "processes": Opt(int),
    "resumed": Opt(ListOf(str)),
    "resumable": Opt(bool),
}


# What `audit compare` reads of metrics.json.
METRICS = {
    "accuracy": MapOf(
        {"last": NUMBER, "best": NUMBER, "last5_mean": NUMBER, "per_epoch": ListOf(NUMBER)}
    ),
    "detectors": MapOf(
        {"auroc": NUMBER, "ap": NUMBER, "precision_at_k": NUMBER}
        | {k: Opt(NUMBER) for k in ("precision", "recall", "f1", "flagged")}
    ),
    "noise": Opt((dict, None)),
    "rank_identical": Opt((MapOf(ListOf(str)), None)),
}


def read_json(path: Path, shape: dict) -> dict:
    """The JSON object in `path`, checked against `shape` (`shape_problem`): the one reader of
    every JSON file of a run folder. UTF-8 only, as `audit` writes it: `json.loads` given bytes
    would also take UTF-16 or UTF-32 (or a BOM), which no file of a run folder is."""
    try:
        text = run_file(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DamagedRunFolder(
            path, f"is not UTF-8 text, as audit writes it (byte {err.start} is not UTF-8)"
        ) from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:  # JSONDecodeError; deep nesting
        raise DamagedRunFolder(path, f"is not valid JSON ({err})") from None
    problem = shape_problem(value, shape)
    if problem:
        raise DamagedRunFolder(path, problem)
    return value


def read_manifest(
    run_dir: Path, shape: dict = MANIFEST, status: Callable[[str], str | None] = lambda s: None
) -> dict:
    """manifest.json of a run folder, checked against `shape` (MANIFEST or RESUMABLE) once
    `status` (the manifest's status -> why the caller cannot take it, or None) has passed it:
    a run still running says so, whatever else its manifest lacks."""
    path = Path(run_dir) / "manifest.json"
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{run_dir} is not a run folder (no manifest.json)")
    manifest = read_json(path, {"status": MANIFEST["status"]})
    refusal = status(manifest["status"])
    if refusal:
        raise UserError(f"{run_dir}: {refusal}")
    problem = shape_problem(manifest, shape)
    if problem:
        raise DamagedRunFolder(path, problem)
    return manifest


def read_run(run_dir: Path) -> tuple[dict, dict]:
    """(manifest, metrics) of a complete run folder, of the shapes MANIFEST and METRICS, whose
    samples.parquet is laid out as it should be (read from its footer: `layout_problem`)."""
    manifest = read_manifest(
        run_dir, MANIFEST, lambda s: None if s == "complete" else f"the run is {s!r}, not complete"
    )
    path = Path(run_dir) / "metrics.json"
    metrics = read_json(path, METRICS)
    if metrics["detectors"] and "suspicion" not in metrics["detectors"]:
        raise DamagedRunFolder(path, "has detector metrics but none of the ensemble (`suspicion`)")
    path = Path(run_dir) / "samples.parquet"
    footer = read_parquet(path, pq.ParquetFile)
    problem = layout_problem(footer.schema_arrow, footer.metadata.num_rows, manifest.get("n_train"))
    if problem:
        raise DamagedRunFolder(path, problem)
    return manifest, metrics


def read_samples(run_dir: Path) -> pd.DataFrame:
    """samples.parquet of a run folder, checked against its manifest's classes and size
    (`auditor.outputs.tables.samples_problem`)."""
    manifest = read_manifest(run_dir)
    path = Path(run_dir) / "samples.parquet"
    table = read_parquet(path, pq.read_table)
    problem = samples_problem(table, manifest["class_names"], manifest.get("n_train"))
    if problem:
        raise DamagedRunFolder(path, problem)
    return table.to_pandas()


def read_parquet(path: Path, read: Callable[[Path], Any]) -> Any:
    """`read(path)` of a Parquet file of the run folder, refused as damage when it is not one."""
    with unreadable(path, "as Parquet", (pa.ArrowException, OSError)):
        return read(run_file(path))


@contextlib.contextmanager
def unreadable(
    path: Path, how: str, errors: tuple[type[Exception], ...], after: str = ""
) -> Iterator[None]:
    """Refuse `path` as damage, "cannot be read <how> (<the error>)<after>", when the block
    reading it raises one of `errors`."""
    try:
        yield
    except errors as err:
        raise DamagedRunFolder(path, f"cannot be read {how} ({brief(err)}){after}") from None


OPTIONAL = "; the file is optional: move it out of the run folder to go on without it"


def optional_file(run_dir: Path, name: str) -> Path | None:
    """The optional file `name` of a run folder, None when the run has none (`audit score`,
    older runs); refused as damage when it is there but not a regular file."""
    path = Path(run_dir) / name
    if not path.exists() and not path.is_symlink():
        return None
    problem = file_problem(path)
    if problem:
        raise DamagedRunFolder(path, problem + OPTIONAL)
    return path


NUMPY_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile)


def load_numpy(path: Path) -> Any:
    """np.load of a run folder's .npy or .npz (no pickles), refused as damage when unreadable."""
    with unreadable(path, "by NumPy", NUMPY_ERRORS, OPTIONAL):
        return np.load(path, allow_pickle=False)


def read_embeddings(run_dir: Path, n: int) -> np.ndarray | None:
    """embeddings.npy as float32 [n, D] (one row per sample), or None when the run has none."""
    path = optional_file(run_dir, "embeddings.npy")
    if path is None:
        return None
    array = load_numpy(path)
    if (
        not isinstance(array, np.ndarray)
        or array.ndim != 2
        or len(array) != n
        or array.dtype.kind != "f"
    ):
        found = (
            f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else "an .npz archive"
        )
        raise DamagedRunFolder(
            path, f"holds {found}, expected floats [{n}, D], a row per sample{OPTIONAL}"
        )
    if not np.isfinite(array).all():
        raise DamagedRunFolder(path, f"holds values that are not finite numbers{OPTIONAL}")
    return array.astype(np.float32)


CAM_ARRAYS = ("sample_id", "cam", "mirror_cam")


def read_cams(run_dir: Path, sample_ids: pd.Series) -> dict[str, np.ndarray] | None:
    """cams.npz as {sample_id, cam, mirror_cam} (float32 maps [n, h, w]) of samples of the run
    (`sample_ids`), or None when absent."""
    path = optional_file(run_dir, "cams.npz")
    if path is None:
        return None
    archive = load_numpy(path)
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DamagedRunFolder(path, f"is not an .npz archive{OPTIONAL}")
    with archive:
        missing = [k for k in CAM_ARRAYS if k not in archive.files]
        if missing:
            raise DamagedRunFolder(path, f"has no array {', '.join(missing)}{OPTIONAL}")
        with unreadable(path, "by NumPy", NUMPY_ERRORS, OPTIONAL):
            ids, cam, mirror = (archive[k] for k in CAM_ARRAYS)
    fits = ids.ndim == 1 and ids.dtype.kind == "U" and cam.ndim == 3 and len(cam) == len(ids)
    if not (fits and cam.shape == mirror.shape and cam.dtype.kind == mirror.dtype.kind == "f"):
        found = ", ".join(
            f"{k} {a.dtype} {a.shape}" for k, a in zip(CAM_ARRAYS, (ids, cam, mirror), strict=True)
        )
        raise DamagedRunFolder(
            path, f"holds {found}; expected n names and two float [n, h, w] maps{OPTIONAL}"
        )
    refuse_unknown_ids(path, ids, sample_ids)
    if not (np.isfinite(cam).all() and np.isfinite(mirror).all()):
        raise DamagedRunFolder(path, f"holds values that are not finite numbers{OPTIONAL}")
    return {
        "sample_id": ids,
        "cam": cam.astype(np.float32),
        "mirror_cam": mirror.astype(np.float32),
    }


def refuse_unknown_ids(path: Path, ids: Any, sample_ids: pd.Series) -> None:
    """Refuse `path` as damage when it names samples that are not in the run (`sample_ids`)."""
    unknown = pd.Index(np.asarray(ids, dtype=object)).difference(pd.Index(sample_ids))
    if len(unknown):
        raise DamagedRunFolder(
            path,
            f"names {len(unknown)} samples that are not in samples.parquet "
            f"(e.g. {unknown[0]!r}){OPTIONAL}",
        )


DUPLICATE_IDS = ("sample_id_a", "sample_id_b")


def read_near_duplicates(run_dir: Path, sample_ids: pd.Series) -> pd.DataFrame | None:
    """near_duplicates.csv (its cells restored, `auditor.csv_cells`), pairs of samples of the
    run (`sample_ids`), or None when absent."""
    path = optional_file(run_dir, "near_duplicates.csv")
    if path is None:
        return None
    # pandas' EmptyDataError and ParserError, and UnicodeDecodeError, are ValueErrors
    with unreadable(path, "as CSV", (ValueError, OSError), OPTIONAL):
        pairs = pd.read_csv(path, dtype=dict.fromkeys(DUPLICATE_IDS, str), keep_default_na=False)
    missing = [c for c in DUPLICATE_IDS if c not in pairs.columns]
    if missing:
        raise DamagedRunFolder(path, f"has no column {', '.join(missing)}{OPTIONAL}")
    ids = list(DUPLICATE_IDS)
    pairs[ids] = pairs[ids].map(restore_cell)
    refuse_unknown_ids(path, pd.concat([pairs[c] for c in ids]), sample_ids)
    return pairs
