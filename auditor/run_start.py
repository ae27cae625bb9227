"""One path from a dataset entry and options to a finished run folder, taken by `audit run`
(`auditor.commands.cmd_run`) and by `auditor.api.audit` alike: the options validated by their
declarations (`auditor.config.resolve`), the output root checked, the run executed
(`auditor.run.execute`) with the CLI's progress lines, and, for a FiftyOne dataset, the results
written back into it (`auditor.fiftyone_results`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditor.config import RunConfig, resolve
from auditor.datasets.registry import DatasetEntry
from auditor.fiftyone_source import KIND
from auditor.progress import log_interval
from auditor.write_guard import check_out_root


def new_config(entry: DatasetEntry, options: dict[str, Any]) -> RunConfig:
    """The settled configuration of a new run of `entry` from `options` (config key -> value,
    None: not set), refused (UserError) as `audit run` refuses it; the output root is checked
    too: a run folder inside a dataset would be read as data (an image folder's new class)."""
    log_interval()  # a bad AUDIT_PROGRESS_SECONDS is refused before anything starts
    config = resolve(entry.name, options, entry.defaults, where=entry.where())
    check_out_root(config.out, dataset_roots=[entry.resolve_root(config.root)])
    return config


def run_audit(
    config: RunConfig, entry: DatasetEntry, argv: list[str], resume: Any = None
) -> tuple[Path, dict]:
    """Run the audit in this process (`auditor.run.execute`; `resume`: an
    `auditor.resume.Resume`); (the run folder, its metrics). A FiftyOne dataset's samples get
    their results written back by process 0."""
    from auditor.run import configure_threads, execute
    from auditor.training import distributed

    configure_threads()
    distributed.init_from_env(config.device)
    run_dir, metrics = execute(config, entry, argv, resume)
    if distributed.rank() == 0 and entry.kind == KIND:
        from auditor.fiftyone_results import write_back

        write_back(run_dir)
    return run_dir, metrics


def command_line(dataset: str, options: dict[str, Any], source: dict[str, Any]) -> list[str]:
    """The `audit run` command that starts the same run as `options` (config keys, Python
    values) and the FiftyOne `source` do: what the manifest records as the run's command."""
    from auditor.fiftyone_source import FLAGS

    argv = ["audit", "run", dataset]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{flag[2:]}")
        else:
            shown = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            argv += [flag, shown]
    for flag, (key, _) in FLAGS.items():
        if key in source:
            value = source[key]
            argv += [flag, ",".join(value) if isinstance(value, list) else str(value)]
    return argv
