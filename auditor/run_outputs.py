"""The last phase of `audit run`: write the run folder's files (docs/run-folder.md): the tables
and metrics.json, then what is drawn from the model of the best trusted method, the files
`audit review` shows (embeddings, the suspects' CAMs, near-duplicate pairs) and report.html."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from auditor.duplicates import near_duplicates
from auditor.evidence import MethodEvidence
from auditor.fsutil import write_text_atomic
from auditor.method_training import Trained
from auditor.outputs.report import GALLERY, build_report
from auditor.outputs.run_folder import (
    RunState,
    write_cams,
    write_embeddings,
    write_near_duplicates,
    write_run_files,
)
from auditor.outputs.tables import dynamics_table, relabel_events_table
from auditor.prepare import Prepared
from auditor.run_scoring import Scored
from auditor.scoring import trusted_methods
from auditor.training.gallery import draw_gallery
from methods.base import Method

REVIEW_CAMS = 5_000  # cams.npz holds the CAMs of at most this many flagged samples
CAM_BATCH = 256  # images per forward pass when drawing them


def write_outputs(prepared: Prepared, trained: Trained, scored: Scored, state: RunState) -> None:
    """Every file of the run folder but the manifest, whose status the caller sets after."""
    table, labels, evidence = prepared.train_table, prepared.labels, trained.evidence
    samples = write_run_files(
        state.run_dir,
        sample_ids=table.sample_ids,
        filepaths=table.filepaths,
        class_names=table.class_names,
        given=labels.given,
        true=labels.true,
        scores=scored.scores,
        metrics=scored.metrics,
        dynamics=dynamics_table(table.sample_ids, {ev.name: ev.signals for ev in evidence}),
        events=relabel_events_table(
            table.sample_ids, {ev.name: ev.relabel_events for ev in evidence if ev.relabels}
        ),
    )
    best = best_trusted({m: a["last5_mean"] for m, a in trained.accuracy.items()})
    chosen = next(ev for ev in evidence if ev.name == best)
    write_review_files(samples, chosen.embeddings, trained.models[best], prepared, state)
    if prepared.config.report:
        write_report_for(
            scored.metrics, samples, evidence, chosen, trained.models[best], prepared, state
        )


def best_trusted(last5: dict[str, float | None]) -> str:
    """The trusted method (`trusted_methods`) of the best last-5 test accuracy: the one whose
    model and embeddings the report and the review show."""
    return max(trusted_methods(last5), key=lambda m: last5[m] if last5[m] is not None else 0)


def write_review_files(
    samples: pd.DataFrame,
    embeddings: np.ndarray,
    model: Method,
    prepared: Prepared,
    state: RunState,
) -> None:
    """What `audit review` shows beside the tables, from the best trusted method (`model`): its
    embeddings (`embeddings.npy`, as the report's UMAP), the CAMs of its model for the suggested
    class on the image and on its mirror for the REVIEW_CAMS most suspect flagged samples
    (`cams.npz`; none for a method without CAMs), and the near-duplicate pairs with different
    given labels (`near_duplicates.csv`, `auditor.duplicates`)."""
    t = time.perf_counter()
    pixels, normalize, device = prepared.pixels[0], prepared.normalize, prepared.device
    write_embeddings(state.run_dir, embeddings)
    flagged = samples[samples["flag_suspicion"]]
    rows = flagged.sort_values("suspicion", ascending=False, kind="stable").index[:REVIEW_CAMS]
    rows = rows.to_numpy().copy()  # writable: torch.from_numpy warns on pandas' read-only array
    suggested = samples["suggested_label"].to_numpy()
    batches = [
        draw_gallery(
            model,
            pixels,
            rows[s : s + CAM_BATCH],
            suggested[rows[s : s + CAM_BATCH]],
            normalize,
            device,
        )
        for s in range(0, len(rows), CAM_BATCH)
    ]
    if batches and batches[0] is not None:
        write_cams(
            state.run_dir,
            samples["sample_id"].to_numpy()[rows],
            np.concatenate([g.cams for g in batches]),
            np.concatenate([g.mirror_cams for g in batches]),
        )
    pairs = near_duplicates(
        samples["sample_id"].to_numpy(),
        samples["given_label"].to_numpy(),
        state.manifest["class_names"],
        embeddings,
        pixels,
    )
    write_near_duplicates(state.run_dir, pairs)
    state.timings["review_files"] = time.perf_counter() - t


def write_report_for(
    metrics: dict,
    samples: pd.DataFrame,
    evidence: list[MethodEvidence],
    chosen: MethodEvidence,
    model: Method,
    prepared: Prepared,
    state: RunState,
) -> None:
    """report.html, drawn from the evidence of the best trusted method (`chosen`, its `model`):
    its embeddings, and the CAMs of its model on the top suspects (for their suggested class);
    the loss histograms of every method of `evidence`."""
    t = time.perf_counter()
    pixels, normalize, device = prepared.pixels[0], prepared.normalize, prepared.device
    top = samples.sort_values("suspicion", ascending=False, kind="stable").index[:GALLERY]
    rows = top.to_numpy().copy()  # writable: torch.from_numpy warns on pandas' read-only array
    gallery = draw_gallery(
        model, pixels, rows, samples["suggested_label"].to_numpy()[rows], normalize, device
    )
    report = build_report(
        manifest=state.manifest,
        metrics=metrics,
        samples=samples,
        last_loss={ev.name: ev.signals["loss"][-1] for ev in evidence},
        embeddings=chosen.embeddings,
        gallery=gallery,
        class_names=state.manifest["class_names"],
        seed=prepared.config.seed,
    )
    write_text_atomic(state.run_dir / "report.html", report)
    state.timings["report"] = time.perf_counter() - t
