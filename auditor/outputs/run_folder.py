"""The run folder: a fresh directory per run, its manifest's life cycle, and the files of
docs/run-folder.md.

`manifest.json` says `running` from the start and `complete` only once every other file has
been written; a failed run is marked `failed` with the error. Every file is written under a
temporary name and renamed (`auditor.outputs.files`). The commands read a run folder through
`auditor.outputs.run_readers`; `audit run --resume` takes one over through `auditor.resume`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from auditor.damage import DamagedRunFolder
from auditor.errors import UserError
from auditor.fsutil import atomic_path, open_lock
from auditor.options import SettingError
from auditor.outputs.files import write_csv, write_json, write_parquet
from auditor.outputs.tables import relabel_frame, samples_table
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
        state = cls(
            run_dir,
            {"run_id": run_dir.name}
            | manifest
            | {
                "versions": package_versions(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            lock=lock_run_dir(run_dir),
        )
        state.save("running")
        return state

    @classmethod
    def resume(cls, run_dir: Path, manifest: dict) -> RunState:
        """Take over an unfinished run folder (its manifest as read by `resumable_manifest`)."""
        lock = lock_run_dir(run_dir)
        resumed = [*manifest.get("resumed", []), time.strftime("%Y-%m-%dT%H:%M:%S%z")]
        state = cls(
            run_dir, manifest | {"resumed": resumed}, dict(manifest.get("timings_s", {})), lock
        )
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
            print(
                f"audit: run interrupted; go on with: audit run --resume {self.run_dir}",
                file=sys.stderr,
            )
            raise
        except SettingError as err:
            self.save("failed", error=f"{type(err).__name__}: {err}", resumable=False)
            print(
                "audit: run failed on its settings; --resume would repeat them: start a new run "
                f"({self.run_dir} keeps what it wrote)",
                file=sys.stderr,
            )
            raise
        except BaseException as err:
            self.save("failed", error=f"{type(err).__name__}: {err}")
            if not isinstance(err, DamagedRunFolder):  # its message says what to do
                print(
                    f"audit: run failed; after fixing the cause: audit run --resume {self.run_dir}",
                    file=sys.stderr,
                )
            raise
        self.timings["total"] = self.timings.get("total", 0.0) + time.perf_counter() - started
        self.save("complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        shutil.rmtree(self.checkpoints, ignore_errors=True)


def lock_run_dir(run_dir: Path) -> int:
    """Hold an exclusive lock on the run folder for this process's lifetime (released by the
    kernel when it exits, however it exits): two processes never run the same folder."""
    fd = open_lock(run_dir / ".lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f"{run_dir} is being run by another audit process") from None
    return fd


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def create_run_dir(out: Path, dataset: str, methods: list[str]) -> Path:
    """A new folder `out/<dataset>/<time>-<methods>[-n]` that no other run shares (mkdir is
    atomic)."""
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
        np.savez(
            f,
            sample_id=np.asarray(sample_ids, dtype=str),
            cam=cams.astype(np.float16),
            mirror_cam=mirror_cams.astype(np.float16),
        )


def write_near_duplicates(run_dir: Path, pairs: pd.DataFrame) -> None:
    """near_duplicates.csv (`auditor.duplicates.COLUMNS`), distances rounded to 6 decimals."""
    write_csv(run_dir / "near_duplicates.csv", pairs.round({"distance": 6}))
