"""One `audit run`, in four phases, each in its own module with a frozen hand-off:

    prepare (`auditor.prepare`: data, labels, splits, the settled config)  -> Prepared
    train every method (`auditor.method_training`)                         -> Trained
    score and measure (`auditor.run_scoring`)                              -> Scored
    write the run folder (`auditor.run_outputs`)

This module only sequences them and keeps the run folder's manifest: `running` from the start,
`complete` only once every other file has been written, `failed` with the error otherwise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from auditor.config import RunConfig
from auditor.datasets.registry import DatasetEntry
from auditor.method_training import train_all
from auditor.outputs.run_folder import RunState
from auditor.prepare import Prepared, prepare
from auditor.resume import Resume, refuse_changed_data, refuse_unfit_checkpoints
from auditor.run_outputs import write_outputs
from auditor.run_scoring import score_run
from auditor.training import distributed


def execute(
    config: RunConfig,
    entry: DatasetEntry,
    argv: list[str],
    resume: Resume | None = None,
) -> tuple[Path, dict]:
    """Run the whole audit; returns (run folder, metrics). With `resume` (an unfinished run,
    `auditor.resume.resume_request`), continue that run in its folder: trainings already
    finished are loaded from their checkpoints, an interrupted one goes on from its last
    finished epoch."""
    t0 = time.perf_counter()
    prepared = prepare(config, entry, resumed=resume is not None)
    state = open_run(prepared, argv, resume)
    if prepared.probe_seconds:  # a resumed run keeps the probe time it recorded
        state.timings["mirror_probe"] = prepared.probe_seconds
    state.timings["load_and_decode"] = time.perf_counter() - t0 - prepared.probe_seconds
    with state.recording(t0):
        metrics = audit(prepared, state)
    return state.run_dir, metrics


def open_run(prepared: Prepared, argv: list[str], resume: Resume | None) -> RunState:
    """The run folder: a new one (its manifest `running`), the resumed one once its data is
    found unchanged, or, in a torchrun process other than 0, the one process 0 opened."""
    if distributed.rank() != 0:
        return RunState.follower(Path(str(distributed.broadcast_object(None))))
    manifest = prepared.manifest
    if resume is not None:
        refuse_changed_data(
            resume.manifest,
            prepared.entry.name,
            manifest["dataset_fingerprint"],
            manifest["validation"],
        )
        refuse_unfit_checkpoints(resume.run_dir, prepared)  # every check before the manifest
        state = RunState.resume(resume.run_dir, resume.manifest)
    else:
        config = prepared.config
        state = RunState.start(
            Path(config.out), prepared.entry.name, config.method, {"command": argv} | manifest
        )
    distributed.broadcast_object(str(state.run_dir))
    return state


def audit(prepared: Prepared, state: RunState) -> dict:
    """Train, score and write; metrics.json's content ({} in torchrun processes other than 0,
    which only train)."""

    def recorded(name: str, seconds: float) -> None:
        state.timings[f"train_{name}"] = seconds
        state.save("running")

    trained = train_all(prepared, state.checkpoints, recorded)
    if not state.primary:
        return {}
    scored = score_run(prepared, trained)
    state.timings["score"] = scored.seconds
    state.manifest["ensemble_decisions"] = scored.scores.decisions
    write_outputs(prepared, trained, scored, state)
    return scored.metrics


def configure_threads() -> None:
    """Use every core for intra-op parallelism unless the user set OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)
