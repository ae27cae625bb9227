"""Where a command may write a file the user named: one rule for every writer.

A file output (`audit export --out` and its default, `audit apply --out`, each file of
`audit compare --out`) is refused, with a `UserError` (exit 2) that names the flag, the path
and what to do, before anything is written, when it is

  (a) inside a dataset's root: the run's, any existing root the registry names, or a folder
      that is one by what it holds (`auditor.dataset_layouts`: a synth-faces marker, a RAF-DB,
      FER2013/FERPlus or AffectNet layout, a csv dataset's labels.csv, class folders of images
      around the output); a new file there too: it could be taken for data; or the label file
      the run trained on;
  (b) an existing file of a run folder (any folder whose `manifest.json` holds a `run_id`),
      unless the command owns it (`own`, e.g. `suspects.csv` for `audit export`), or a new one
      that takes the name of a file a run writes and reads back (RUN_FILES: a run folder's
      readers would take it for the run's own); or a dataset's review ledger, which holds
      every annotator decision (`auditor.ledger`);
  (c) an existing file, unless `force` (`--force` lifts this rule only, never (a) or (b));
  (d) not a place for a regular file: an empty path, a folder, a device, pipe or socket,
      anything under /proc, /sys or /dev (but /dev/shm, a plain tmpfs);
  (e) in a folder that cannot be made or written: missing folders on the way are created (as
      `auditor.fsutil.atomic_path` does), but the nearest existing one must be a writable folder.

An output root (`audit score --out`, under which a new run folder is made, and the tool's own
cache folder, `auditor.fsutil.cache_dir`) is refused under (a), (d) and (e), when it is an
existing file or a folder that cannot be written, and when it is or lies in a run folder. The
files the tool keeps for itself beside a run (the review ledger and lock files) are checked
by `check_own_file`: (a), (d), (e), and never a symbolic link, which the tool never makes.
Writers write to the resolved path returned, through `auditor.fsutil.atomic_path` (a temporary
name, then a rename): nothing is ever half-written. Every path is resolved by
`auditor.fsutil.resolved` (`~user`, symlink loops) and shown by `auditor.errors.shown`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from auditor.dataset_layouts import dataset_root_holding
from auditor.errors import UserError, shown
from auditor.fsutil import CACHE_ENV, cache_dir, resolved, user_path

SYSTEM_FOLDERS = tuple(Path(p) for p in ("/proc", "/sys", "/dev"))
# What `audit run` / `audit score` write in a run folder (docs/run-folder.md), files and folders.
RUN_FILES = frozenset(
    {
        "manifest.json",
        "metrics.json",
        "samples.parquet",
        "dynamics.parquet",
        "relabel_events.parquet",
        "relabel.csv",
        "embeddings.npy",
        "cams.npz",
        "near_duplicates.csv",
        "report.html",
        ".lock",
        "checkpoints",
        "images",
    }
)
SCRATCH = Path("/dev/shm")  # a plain tmpfs: the one regular place to write under /dev


def named_path(out: str | os.PathLike, flag: str) -> Path:
    """`out` as a path, refusing an empty one (which would mean the current folder)."""
    text = os.fspath(out)
    if not text.strip() or "\0" in text:
        raise UserError(f"{flag} {shown(repr(text))} names no path: give one")
    return user_path(text, flag)


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` holds a `manifest.json` with a `run_id` (or one too damaged to read)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return "run_id" in json.loads(manifest.read_text(encoding="utf-8"))
    except (ValueError, TypeError, OSError):
        return True  # a damaged run folder is still a run folder


def run_folder_of(path: Path) -> Path | None:
    """The run folder `path` lies in (at any depth), or None."""
    return next((folder for folder in path.parents if is_run_folder(folder)), None)


def run_dataset_root(manifest: dict) -> Path | None:
    """The root of a run's dataset: as the registry resolves it, else (a registry that no longer
    names the dataset) the run's `--root`; None for `audit score` runs and root-less datasets."""
    if "dataset_kind" not in manifest:
        return None
    from auditor.datasets.registry import get_entry, load_registry

    root = manifest.get("config", {}).get("root")
    try:
        entry = get_entry(manifest["dataset"], load_registry())
    except UserError:
        return Path(root) if root else None
    return entry.resolve_root(root)


def registry_roots() -> list[Path]:
    """The roots of the registry's datasets that exist (each as it resolves: its environment
    variable, then `root`); none when the registry cannot be read."""
    from auditor.datasets.registry import load_registry

    try:
        entries = load_registry().values()
    except UserError:
        return []
    roots = (entry.resolve_root() for entry in entries)
    return [root for root in roots if root is not None and root.is_dir()]


def check_place(out: str | os.PathLike, flag: str) -> Path:
    """Rules (d) and (e) (see the module docstring); `out` resolved (symlinks followed)."""
    target = resolved(named_path(out, flag), flag)
    out = shown(out)
    try:
        system = next((f for f in SYSTEM_FOLDERS if target.is_relative_to(f)), None)
        if system is not None and not target.is_relative_to(SCRATCH):
            raise UserError(
                f"{flag} {out} is under {system}, not a regular place to write: write elsewhere"
            )
        if target.exists() and not (target.is_file() or target.is_dir()):
            raise UserError(
                f"{flag} {out} is a device, pipe or socket, not a regular place to write: "
                "name a new file"
            )
        folder = target.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir():
            raise UserError(
                f"{flag} {out}: {shown(folder)} is a file, not a folder: name another path"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(
                f"{flag} {out}: the folder {shown(folder)} is not writable: name another path"
            )
    except (OSError, RuntimeError) as err:  # a folder that cannot be searched, a symlink loop
        reason = getattr(err, "strerror", None) or err
        raise UserError(f"{flag} {out} cannot be checked ({reason}): name another path") from None
    return target


def refuse_dataset_roots(
    target: Path,
    out: str | os.PathLike,
    flag: str,
    roots: Iterable[Path | None],
    *,
    itself: bool = True,
    fix: str = "write outside it",
) -> None:
    """Rule (a): refuse `target` inside any of `roots`, of the registry's roots, or of a folder
    that is a dataset's root by what it holds (at or above `target`; strictly above it when not
    `itself`); the message ends in `fix`."""
    for root in [*(r for r in roots if r is not None), *registry_roots()]:
        root = resolved(root, "the dataset root")
        if target.is_relative_to(root):
            refuse_inside(out, flag, root, "", fix)
    found = dataset_root_holding(target, itself=itself)
    if found is not None:
        refuse_inside(out, flag, found[0], f", which holds {found[1]}", fix)


def refuse_inside(
    out: str | os.PathLike, flag: str, root: Path, why: str, fix: str = "write outside it"
) -> None:
    raise UserError(
        f"{flag} {shown(out)} is inside the dataset's root {shown(root)}{why}; the original "
        f"labels are never modified, and a new file there could be taken for data: {fix}"
    )


def check_own_file(
    path: Path, what: str, dataset_roots: Iterable[Path | None] = (), fix: str = ""
) -> Path:
    """A file the tool keeps for itself (the review ledger) at `path`, `what` naming it: refused
    under rules (a) (the message ending in `fix`), (d) and (e), and when a symbolic link is in
    its place (the tool never makes one, and would write wherever it leads). Returns it
    resolved. Its lock file is opened by `auditor.fsutil.open_lock`, which never follows one."""
    if Path(path).is_symlink():
        raise UserError(
            f"{what} {shown(path)} is a symbolic link, which audit never makes: remove it"
        )
    target = check_place(path, what)
    refuse_dataset_roots(target, path, what, dataset_roots, fix=fix or "write outside it")
    return target


def refuse_run_files(target: Path, out: str | os.PathLike, flag: str) -> None:
    """Rule (b) for a new file: a name of RUN_FILES in a run folder (or anything under its
    `checkpoints/` or `images/`; an existing one is refused by `check_out`), and a review ledger
    wherever it is, new or not."""
    from auditor.ledger import LEDGER_NAME

    if target.name == LEDGER_NAME:
        raise UserError(
            f"{flag} {out} is a review ledger, which holds every annotator decision: "
            "write to a new file"
        )
    run = None if target.exists() else run_folder_of(target)
    first = None if run is None else target.relative_to(run).parts[0]
    if first in RUN_FILES:
        raise UserError(
            f"{flag} {out}: {first} is a file the run folder {shown(run)} writes and reads back: "
            "write to a new file (--force never writes there)"
        )


def check_out(
    out: str | os.PathLike,
    *,
    flag: str = "--out",
    dataset_roots: Iterable[Path | None] = (),
    labels_file: str | None = None,
    own: tuple[str, ...] = (),
    force: bool = False,
) -> Path:
    """Refuse the file output `out` under rules (a) to (e) of the module docstring; return it
    resolved, the path to write. `dataset_roots`: the roots of the runs involved (the
    registry's are always added); `own`: names of files in a run folder the command may rewrite;
    `force`: lift rule (c)."""
    target = check_place(out, flag)
    if target.is_dir():
        raise UserError(f"{flag} {out} is a folder, not a file: name a new file")
    out = shown(out)
    if labels_file and target == resolved(labels_file, "the run's label file"):
        raise UserError(f"{flag} {out} is the label file the run trained on; write to a new file")
    refuse_dataset_roots(target, out, flag, dataset_roots)
    refuse_run_files(target, out, flag)
    if not target.exists():
        return target
    run = run_folder_of(target)
    if run is not None and not (target.parent == run and target.name in own):
        raise UserError(
            f"{flag} {out} would overwrite {target.name}, a file of the run folder {shown(run)}; "
            "write to a new file (--force never overwrites a run's files)"
        )
    if run is None and not force:
        raise UserError(
            f"{flag} {out} already exists: pass --force to overwrite it, or name a new file"
        )
    return target


def check_out_root(
    out: str | os.PathLike, *, flag: str = "--out", dataset_roots: Iterable[Path | None] = ()
) -> Path:
    """Refuse the output root `out` (a folder under which a new run folder is made): rules (a)
    (`dataset_roots` and the registry's), (d) and (e), an existing file, a run folder or a folder
    inside one; return it resolved."""
    target = check_place(out, flag)
    out = shown(out)
    if target.exists() and not target.is_dir():
        raise UserError(f"{flag} {out} is a file, not a folder: name a folder")
    if target.is_dir() and not os.access(target, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out} is a folder that cannot be written: name another")
    refuse_dataset_roots(target, out, flag, dataset_roots)
    run = target if is_run_folder(target) else run_folder_of(target)
    if run is not None:
        raise UserError(
            f"{flag} {out} would put a run inside the run folder {shown(run)}: "
            "name a folder outside any run"
        )
    return target


def checked_cache_dir() -> Path:
    """The tool's cache folder (`auditor.fsutil.cache_dir`), resolved, once it passes the rules
    of an output root (`check_out_root`): not a file, /proc, a folder that cannot be written, a
    dataset's root or a run folder. Checked before anything is decoded into it."""
    return check_out_root(cache_dir(), flag=CACHE_ENV)
