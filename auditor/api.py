"""The public Python API of `audit`: what the command line does, from a notebook.

    from auditor.api import audit, open_run, score, UserError

    run = audit("demo", methods=["ce"], epochs=4, limit=2000)   # = audit run demo ...
    run.suspects(20)          # DataFrame, most suspect first
    run.to_fiftyone()         # the FiftyOne dataset of the run (`audit review`)
    run = open_run("reports/demo/20260101-120000-ce")           # a run folder, validated
    frame = score(pred_probs, labels)                           # = audit score

`audit` runs exactly what `audit run` runs (`auditor.run_start`: the same validation, progress
lines and run folder); its options are the `audit run` flags by their Python names (`epochs`,
`image_size`, `noise_rate`, `eac_lambda`...), checked by the same declarations. Everything a
user can fix is refused with `UserError` (the CLI's exit 2), one sentence saying what to fix.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from auditor import fiftyone_source
from auditor.datasets.registry import DatasetEntry, get_entry, load_registry
from auditor.errors import UserError
from auditor.outputs.run_readers import read_run, read_samples

if TYPE_CHECKING:
    import fiftyone as fo

__all__ = ["Run", "UserError", "audit", "open_run", "score"]


@dataclass(frozen=True)
class Run:
    """A complete run folder, read and checked (`open_run`): what `audit run` or `audit score`
    wrote."""

    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]

    @functools.cached_property
    def samples(self) -> pd.DataFrame:
        """samples.parquet: a row per audited sample (given and suggested labels, suspicion,
        every detector's score_ and flag_ columns, the class probabilities)."""
        return read_samples(self.path)

    def suspects(self, n: int | None = None) -> pd.DataFrame:
        """The samples the ensemble flags (`flag_suspicion`), most suspect first; with `n`, the
        `n` most suspect samples, flagged or not (`audit export --top N`)."""
        ranked = self.samples.sort_values("suspicion", ascending=False, kind="stable")
        if n is None:
            return ranked[ranked["flag_suspicion"]]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"suspects(n={n!r}): n must be a whole number of at least 1")
        return ranked.head(n)

    @property
    def accuracy(self) -> dict[str, Any]:
        """Each method's accuracy on the held-out split (metrics.json `accuracy`: last, best,
        last5_mean, per_epoch); empty for `audit score`."""
        return self.metrics["accuracy"]

    @property
    def decisions(self) -> dict[str, Any]:
        """What the run decided for itself, as recorded: the ensemble (`ensemble_decisions`:
        its members, the number flagged and why) and, for `audit run`, the mirror symmetry and
        the validation split."""
        keys = ("ensemble_decisions", "mirror_symmetry", "validation")
        return {k: self.manifest[k] for k in keys if k in self.manifest}

    @property
    def report_path(self) -> Path | None:
        """report.html, or None when the run wrote none (`--no-report`, `audit score`)."""
        path = self.path / "report.html"
        return path if path.is_file() else None

    def to_fiftyone(self, top: int | None = None) -> fo.Dataset:
        """The run in FiftyOne: for a run of a FiftyOne dataset, that dataset (the results are
        in its `audit_` fields); else the review dataset `audit review --no-launch` makes
        (`top`: its size of each detector's top-k view). Open it with `fo.launch_app(...)`."""
        if self.manifest.get("dataset_kind") == fiftyone_source.KIND:
            from auditor.fiftyone_setup import fo

            name = self.manifest["dataset_notes"][fiftyone_source.NOTES]["dataset"]
            if not fo.dataset_exists(name):
                raise UserError(f"no FiftyOne dataset {name!r} any more")
            return fo.load_dataset(name)
        from auditor.review import load_into_fiftyone

        return load_into_fiftyone(self.path, top=top)

    def export(
        self,
        out: str | PathLike | None = None,
        *,
        top: int | None = None,
        from_fiftyone: bool = False,
        include_reviewed: bool = False,
        second_look: bool = False,
        reviewer: str | None = None,
        force: bool = False,
    ) -> Path:
        """`audit export`: write the relabel CSV (the suspects, the `top` most suspect, the
        `second_look` samples, or the decisions marked in FiftyOne) and return its path."""
        from auditor.corrections import export_relabels

        path, _, _ = export_relabels(
            self.path,
            from_fiftyone=from_fiftyone,
            out=out,
            top=top,
            include_reviewed=include_reviewed,
            second_look=second_look,
            reviewer=reviewer,
            force=force,
        )
        return Path(path)


def open_run(path: str | PathLike) -> Run:
    """The complete run folder at `path`, every file checked as the commands check it; a
    damaged, unfinished or missing folder is refused with `UserError`."""
    manifest, metrics = read_run(Path(path))
    run = Run(Path(path), manifest, metrics)
    run.samples  # noqa: B018 - read and checked now, not at first use
    return run


def audit(
    dataset: str | PathLike | tuple[np.ndarray, np.ndarray] | fo.Dataset | fo.DatasetView,
    *,
    methods: list[str] | str | None = None,
    label_field: str | None = None,
    tags: list[str] | str | None = None,
    prefix: str | None = None,
    **options: Any,
) -> Run:
    """`audit run`: train, score every sample and write a run folder; the run (`Run`).

    `dataset`: a registry name (`audit datasets`), a folder of class sub-folders (the
    `imagefolder` kind), arrays `(images, labels)` (uint8 [N, H, W(, C)] and class ids [N],
    written once as a folder: `auditor.array_folder`) or a FiftyOne dataset or view, whose
    samples' `label_field` classifications are audited and which gets the results back under
    `prefix` (`auditor.fiftyone_results`); `tags` keep only samples with one of them. `methods`: the
    methods to train (`--method`). `options`: any `audit run` option by its Python name
    (`epochs=4`, `out="reports"`, `eac_lambda=5.0`)."""
    registry = load_registry()
    entry, source, root = dataset_entry(dataset, registry)
    if root is not None:
        options.setdefault("root", root)
    tags = [tags] if isinstance(tags, str) else None if tags is None else list(tags)
    given = {"label_field": label_field, "tags": tags, "prefix": prefix}
    source |= {k: v for k, v in given.items() if v is not None}
    entry = fiftyone_source.with_source(entry, source)
    if methods is not None:
        options["method"] = [methods] if isinstance(methods, str) else list(methods)
    from auditor.run_start import command_line, new_config, run_audit

    config = new_config(entry, options)
    argv = command_line(entry.name, options, source)
    run_dir, _ = run_audit(config, entry, argv)
    return open_run(run_dir)


def dataset_entry(
    dataset: Any, registry: dict[str, DatasetEntry]
) -> tuple[DatasetEntry, dict[str, Any], str | None]:
    """(the registry entry, the FiftyOne source options, the root folder or None) of `audit`'s
    `dataset` argument."""
    if type(dataset).__module__.startswith("fiftyone."):
        from auditor.fiftyone_setup import fo

        if isinstance(dataset, fo.Dataset):
            return fiftyone_source.fiftyone_entry(registry), {"dataset": dataset.name}, None
        if isinstance(dataset, fo.DatasetView):
            stages = dataset._serialize()
            source = {"dataset": dataset.dataset_name, "view_stages": stages}
            return fiftyone_source.fiftyone_entry(registry), source, None
    if isinstance(dataset, tuple) and len(dataset) == 2:
        from auditor.array_folder import array_folder

        return get_entry("csv", registry), {}, str(array_folder(*dataset))
    if isinstance(dataset, str) and dataset in registry:
        return registry[dataset], {}, None
    if isinstance(dataset, str | PathLike) and Path(dataset).is_dir():
        return get_entry("imagefolder", registry), {}, str(dataset)
    raise UserError(
        f"audit: dataset {shown(dataset)} is neither a registry name ({', '.join(registry)}), a "
        "folder, a FiftyOne dataset or view, nor arrays (images, labels)"
    )


def shown(dataset: Any) -> str:
    """`dataset` as a message names it: its repr, cut short."""
    text = repr(dataset)
    return text if len(text) <= 80 else text[:77] + "..."


def score(
    pred_probs: np.ndarray | str | PathLike,
    labels: np.ndarray | str | PathLike,
    *,
    true_labels: np.ndarray | str | PathLike | None = None,
    out: str | PathLike = "reports",
) -> pd.DataFrame:
    """`audit score`: the probability-only detectors on out-of-sample `pred_probs` [N, K]
    against the given `labels` [N] (arrays or .npy files; `true_labels` for detection metrics),
    written to a run folder under `out` as the command writes it; its samples as a DataFrame
    (`DataFrame.attrs["run"]` is the `Run`)."""
    from auditor.predictions import score_predictions, shown_source
    from auditor.write_guard import check_out_root

    check_out_root(str(out))
    inputs = {"--pred-probs": pred_probs, "--labels": labels, "--true-labels": true_labels}
    argv = ["audit", "score"]
    for flag, value in inputs.items():
        argv += [] if value is None else [flag, shown_source(value)]
    argv += ["--out", str(out)]
    run_dir, _ = score_predictions(pred_probs, labels, true_labels, str(out), argv)
    run = open_run(run_dir)
    frame = run.samples.copy()
    frame.attrs["run"] = run
    return frame
