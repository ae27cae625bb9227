"""The run folder: a fresh directory per run, its manifest's life cycle, and the files of docs/run-folder.md.

`manifest.json` says `running` from the start and `complete` only once every other file has
been written; a failed run is marked `failed` with the error. Every file is written under a
temporary name and renamed (`auditor.outputs.files`).

Every command that opens a run folder reads it here, and each file is checked against what
`audit` writes before anything uses it: `manifest.json` (`MANIFEST`, for `--resume` also
`RESUMABLE` and the config `audit run` would accept), `metrics.json` (`METRICS`),
`samples.parquet` (`auditor.outputs.tables.samples_problem`, against the manifest's classes)
and, when present, `embeddings.npy`, `cams.npz` and `near_duplicates.csv` (optional: `audit
score` and older runs have none). A file that is missing, unreadable or not of that shape is
refused with one sentence, `this run folder is damaged: <file> <what is wrong>`
(`DamagedRunFolder`, exit 2), never a traceback later.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
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
    check_checkpoints,
    file_problem,
    run_file,
    shape_problem,
)
from auditor.errors import UserError
from auditor.fsutil import atomic_path
from auditor.options import SettingError
from auditor.outputs.files import write_csv, write_json, write_parquet
from auditor.outputs.tables import layout_problem, relabel_frame, samples_problem, samples_table
from auditor.scoring import Scores

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "cleanlab",
    "audit",
)


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
    ),  # fmt: skip
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
    ),  # fmt: skip
    "detectors": MapOf(
        {"auroc": NUMBER, "ap": NUMBER, "precision_at_k": NUMBER}
        | {k: Opt(NUMBER) for k in ("precision", "recall", "f1", "flagged")}
    ),  # fmt: skip
    "noise": Opt((dict, None)),
    "rank_identical": Opt((MapOf(ListOf(str)), None)),
}


def read_json(path: Path, shape: dict) -> dict:
    """The JSON object in `path`, checked against `shape` (`shape_problem`)."""
    try:
        value = json.loads(run_file(path).read_bytes())
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError; deep nesting
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


@dataclass
class RunState:
    """What the run folder's manifest records as the run goes."""

    run_dir: Path
    manifest: dict
    timings: dict[str, float] = field(default_factory=dict)
    lock: int | None = None  # an fcntl lock on <run>/.lock, held while this process runs it
    primary: bool = True  # False in torchrun processes other than 0: they write nothing

    @classmethod
    def start(cls, out: Path, dataset: str, tags: list[str], manifest: dict) -> RunState:
        """Create a fresh run folder and write its manifest with status `running`."""
        run_dir = create_run_dir(Path(out), dataset, tags)
        state = cls(run_dir, {"run_id": run_dir.name} | manifest | {
            "versions": package_versions(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }, lock=lock_run_dir(run_dir))  # fmt: skip
        state.save("running")
        return state

    @classmethod
    def resume(cls, run_dir: Path, manifest: dict) -> RunState:
        """Take over an unfinished run folder (its manifest as read by `resumable_manifest`)."""
        lock = lock_run_dir(run_dir)
        resumed = [*manifest.get("resumed", []), time.strftime("%Y-%m-%dT%H:%M:%S%z")]
        state = cls(run_dir, manifest | {"resumed": resumed}, dict(manifest.get("timings_s", {})), lock)  # fmt: skip
        state.manifest.pop("error", None)
        state.save("running")
        return state

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    @classmethod
    def follower(cls, run_dir: Path) -> RunState:
        """The run as seen by a torchrun process other than 0: it trains, writes nothing."""
        return cls(run_dir, {}, primary=False)

    def save(self, status: str, **extra) -> None:
        if not self.primary:
            return
        self.manifest |= {"status": status, "timings_s": self.timings} | extra
        write_json(self.run_dir / "manifest.json", self.manifest)

    @contextlib.contextmanager
    def recording(self, started: float) -> Iterator[None]:
        """Mark the run `failed` (with the error) if the block raises, else record the total
        time since `started` (perf_counter) and mark it `complete`."""
        if not self.primary:
            yield
            return
        try:
            yield
        except KeyboardInterrupt:
            self.save("interrupted", error="interrupted (Ctrl-C or SIGTERM)")
            print(f"audit: run interrupted; go on with: audit run --resume {self.run_dir}", file=sys.stderr)  # fmt: skip
            raise
        except SettingError as err:
            self.save("failed", error=f"{type(err).__name__}: {err}", resumable=False)
            print(f"audit: run failed on its settings; --resume would repeat them: start a new run ({self.run_dir} keeps what it wrote)", file=sys.stderr)  # fmt: skip
            raise
        except BaseException as err:
            self.save("failed", error=f"{type(err).__name__}: {err}")
            if not isinstance(err, DamagedRunFolder):  # its message says what to do
                print(f"audit: run failed; after fixing the cause: audit run --resume {self.run_dir}", file=sys.stderr)  # fmt: skip
            raise
        self.timings["total"] = self.timings.get("total", 0.0) + time.perf_counter() - started
        self.save("complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        shutil.rmtree(self.checkpoints, ignore_errors=True)


def lock_run_dir(run_dir: Path) -> int:
    """Hold an exclusive lock on the run folder for this process's lifetime (released by the
    kernel when it exits, however it exits): two processes never run the same folder."""
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{run_dir} is being run by another audit process") from None
    return fd


def resumable_manifest(run_dir: Path) -> dict:
    """The manifest of a run folder that `audit run --resume` can continue: of the shape
    RESUMABLE, its config what `audit run` would accept and would write (`config_problem`), and
    every checkpoint readable (`auditor.damage.check_checkpoints`). Nothing in the
    folder is changed by a refusal."""
    manifest = read_manifest(run_dir, RESUMABLE, lambda s: "the run is already complete" if s == "complete" else None)  # fmt: skip
    if manifest.get("resumable") is False:
        raise UserError(f"--resume {run_dir}: the run failed on its settings, which --resume keeps ({manifest.get('error')}): start a new run")  # fmt: skip
    from auditor.config import ADDED_SINCE

    manifest["config"] = ADDED_SINCE | manifest["config"]  # a run written before those options
    problem = config_problem(manifest["dataset"], manifest["config"])
    if problem:
        raise DamagedRunFolder(Path(run_dir) / "manifest.json", problem)
    check_checkpoints(Path(run_dir) / "checkpoints")
    return manifest


def config_problem(dataset: str, values: dict) -> str | None:
    """Why a manifest's `config` is not one `audit run` would take and write, naming the keys:
    null where the option has a value, an option missing or not its own, a value
    `auditor.config.from_dict` refuses; None when it is."""
    from auditor.config import CORE, declared_defaults, from_dict

    defaults = declared_defaults()
    nulls = sorted(k for k, v in values.items() if v is None and defaults.get(k) is not None)
    problem = config_with(("{} null", nulls), ("no {}", sorted({f.name for f in CORE} - set(values))))  # fmt: skip
    if problem:
        return problem
    try:
        written = from_dict(dataset, values).as_dict()
    except UserError as err:
        return f"has a config that audit run refuses: {err}"
    return config_with(("no {}", sorted(set(written) - set(values))),
                       ("{}, options of no method or noise it uses", sorted(set(values) - set(written))))  # fmt: skip


def config_with(*parts: tuple[str, list[str]]) -> str | None:
    """'has a config with <part>; <part>' for the parts (a format, the keys) naming any key."""
    named = [what.format(", ".join(keys)) for what, keys in parts if keys]
    return "has a config with " + "; ".join(named) if named else None


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def create_run_dir(out: Path, dataset: str, methods: list[str]) -> Path:
    """A new folder `out/<dataset>/<time>-<methods>[-n]` that no other run shares (mkdir is atomic)."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{'-'.join(methods)}"
    parent = out / dataset
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        candidate = parent / (stem if n == 0 else f"{stem}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"could not create a new run folder under {parent}")


def write_run_files(
    run_dir: Path,
    *,
    sample_ids: np.ndarray,
    filepaths: np.ndarray,
    class_names: list[str],
    given: np.ndarray,
    true: np.ndarray | None,
    scores: Scores,
    metrics: dict,
    dynamics: pa.Table,
    events: pa.Table | None = None,
) -> pd.DataFrame:
    """samples.parquet, dynamics.parquet, relabel_events.parquet (when given), metrics.json and
    relabel.csv; the caller marks the manifest complete afterwards. Returns the samples table."""
    samples = samples_table(
        sample_ids=sample_ids,
        filepaths=filepaths,
        given=given,
        true=true,
        class_names=class_names,
        scores=scores,
    )
    write_parquet(run_dir / "samples.parquet", samples)
    write_parquet(run_dir / "dynamics.parquet", dynamics)
    if events is not None:
        write_parquet(run_dir / "relabel_events.parquet", events)
    write_json(run_dir / "metrics.json", metrics)
    frame = samples.to_pandas()
    write_csv(run_dir / "relabel.csv", relabel_frame(frame, class_names, run_dir.name))
    return frame


def read_run(run_dir: Path) -> tuple[dict, dict]:
    """(manifest, metrics) of a complete run folder, of the shapes MANIFEST and METRICS, whose
    samples.parquet is laid out as it should be (read from its footer: `layout_problem`)."""
    manifest = read_manifest(run_dir, MANIFEST, lambda s: None if s == "complete" else f"the run is {s!r}, not complete")  # fmt: skip
    path = Path(run_dir) / "metrics.json"
    metrics = read_json(path, METRICS)
    if metrics["detectors"] and "suspicion" not in metrics["detectors"]:
        raise DamagedRunFolder(path, "has detector metrics but none of the ensemble (`suspicion`)")
    path = Path(run_dir) / "samples.parquet"
    footer = read_parquet(path, pq.ParquetFile)
    problem = layout_problem(footer.schema_arrow, footer.metadata.num_rows, manifest.get("n_train"))  # fmt: skip
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
def unreadable(path: Path, how: str, errors: tuple[type[Exception], ...], after: str = "") -> Iterator[None]:  # fmt: skip
    """Refuse `path` as damage, "cannot be read <how> (<the error>)<after>", when the block
    reading it raises one of `errors`."""
    try:
        yield
    except errors as err:
        raise DamagedRunFolder(path, f"cannot be read {how} ({brief(err)}){after}") from None


EMBEDDINGS_FLOAT16_ABOVE = 1 << 26  # values (256 MiB as float32); above, stored as float16


def write_embeddings(run_dir: Path, embeddings: np.ndarray) -> None:
    """embeddings.npy: float32 [N, D], rows in samples.parquet order; float16 when N x D is
    above EMBEDDINGS_FLOAT16_ABOVE."""
    dtype = np.float16 if embeddings.size > EMBEDDINGS_FLOAT16_ABOVE else np.float32
    with atomic_path(run_dir / "embeddings.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(embeddings, dtype=dtype))


def write_cams(
    run_dir: Path, sample_ids: np.ndarray, cams: np.ndarray, mirror_cams: np.ndarray
) -> None:
    """cams.npz: `sample_id` (str [n]), `cam` and `mirror_cam` (float16 [n, h, w], the feature
    map's resolution; the mirror's map mirrored back to the image's orientation)."""
    with atomic_path(run_dir / "cams.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, sample_id=np.asarray(sample_ids, dtype=str),
                 cam=cams.astype(np.float16), mirror_cam=mirror_cams.astype(np.float16))  # fmt: skip


def write_near_duplicates(run_dir: Path, pairs: pd.DataFrame) -> None:
    """near_duplicates.csv (`auditor.duplicates.COLUMNS`), distances rounded to 6 decimals."""
    write_csv(run_dir / "near_duplicates.csv", pairs.round({"distance": 6}))


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
    if not isinstance(array, np.ndarray) or array.ndim != 2 or len(array) != n or array.dtype.kind != "f":  # fmt: skip
        found = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else "an .npz archive"  # fmt: skip
        raise DamagedRunFolder(path, f"holds {found}, expected floats [{n}, D], a row per sample{OPTIONAL}")  # fmt: skip
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
        found = ", ".join(f"{k} {a.dtype} {a.shape}" for k, a in zip(CAM_ARRAYS, (ids, cam, mirror), strict=True))  # fmt: skip
        raise DamagedRunFolder(path, f"holds {found}; expected n names and two float [n, h, w] maps{OPTIONAL}")  # fmt: skip
    refuse_unknown_ids(path, ids, sample_ids)
    if not (np.isfinite(cam).all() and np.isfinite(mirror).all()):
        raise DamagedRunFolder(path, f"holds values that are not finite numbers{OPTIONAL}")
    return {"sample_id": ids, "cam": cam.astype(np.float32), "mirror_cam": mirror.astype(np.float32)}  # fmt: skip


def refuse_unknown_ids(path: Path, ids: Any, sample_ids: pd.Series) -> None:
    """Refuse `path` as damage when it names samples that are not in the run (`sample_ids`)."""
    unknown = pd.Index(np.asarray(ids, dtype=object)).difference(pd.Index(sample_ids))
    if len(unknown):
        raise DamagedRunFolder(path, f"names {len(unknown)} samples that are not in samples.parquet (e.g. {unknown[0]!r}){OPTIONAL}")  # fmt: skip


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
