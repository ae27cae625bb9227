"""The `audit` commands: one function per subcommand, given the parsed arguments, returning
the exit code (0; a `UserError` they raise becomes exit 2 in `auditor.cli.main`). Each imports
what it needs when called, so `audit datasets` or `audit --help` never import torch."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from auditor import fiftyone_source  # noqa: F401  (registers the dataset kind fiftyone)
from auditor.errors import UserError
from auditor.processes import launch_processes


def cmd_datasets(args: argparse.Namespace) -> int:
    from auditor.datasets import dataset_status
    from auditor.datasets.registry import load_registry

    mirror = {True: "yes", False: "no", None: "measured"}  # `mirror_symmetric`, auditor.symmetry
    rows = [("name", "kind", "root", "found", "size", "mirror")]
    for entry in load_registry().values():
        root, found, detail = dataset_status(entry)
        found_word = "yes" if found else "no"
        symmetric = mirror[entry.mirror_symmetric]
        rows.append((entry.name, entry.kind, str(root or "-"), found_word, detail, symmetric))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Every option is validated here, before any training process starts (`--nproc` included);
    the run is the one `auditor.api.audit` starts (`auditor.run_start`)."""
    from auditor.config import from_dict
    from auditor.datasets.registry import get_entry, load_registry
    from auditor.fiftyone_source import FLAG_DESTS, resumed_entry, typed_source, with_source
    from auditor.progress import log_interval
    from auditor.run_start import new_config

    log_interval()  # a bad AUDIT_PROGRESS_SECONDS is refused before anything starts
    under_torchrun = "LOCAL_RANK" in os.environ
    dropped = ("command", "func", "dataset", "resume", "nproc", "argv", *FLAG_DESTS)
    cli = {k: v for k, v in vars(args).items() if k not in dropped}
    source = typed_source(vars(args))
    resume = None
    processes = args.nproc or 1
    if args.resume:
        from auditor.resume import resume_request

        typed = {dest: getattr(args, dest) for dest in FLAG_DESTS}
        resume = resume_request(args.resume, args.dataset, cli | typed, args.nproc)
        processes = resume.processes
        args.dataset = resume.manifest["dataset"]
    if not args.dataset:
        raise UserError("audit run needs a DATASET (see `audit datasets`) or --resume RUN_DIR")
    entry = with_source(get_entry(args.dataset, load_registry()), source)
    if resume is None:
        config = new_config(entry, cli)
        argv = ["audit", *args.argv]
    else:
        entry = resumed_entry(entry, resume.manifest)
        config = from_dict(entry.name, resume.manifest["config"])
        argv = resume.manifest["command"]
    if processes > 1 and not under_torchrun:
        return launch_processes(processes, args.argv)

    from auditor.ledger import run_sentence
    from auditor.outputs.run_readers import read_samples
    from auditor.run_start import run_audit
    from auditor.summary import summary_lines
    from auditor.training import distributed

    run_dir, metrics = run_audit(config, entry, argv, resume)
    if distributed.rank() == 0:
        for line in summary_lines(metrics):
            print(line)
        reviewed = run_sentence(run_dir, read_samples(run_dir))
        if reviewed:
            print(reviewed, file=sys.stderr)
        print(run_dir)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """`--out` is checked first (`auditor.write_guard.check_out_root`), before the detectors'
    imports."""
    from auditor.write_guard import check_out_root

    check_out_root(args.out)
    from auditor.predictions import score_predictions
    from auditor.summary import summary_lines

    run_dir, metrics = score_predictions(
        args.pred_probs, args.labels, args.true_labels, args.out, ["audit", *args.argv]
    )
    for line in summary_lines(metrics):
        print(line)
    print(run_dir)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from auditor.compare import compare_runs

    for line in compare_runs([Path(p) for p in args.run_dirs], args.out, force=args.force):
        print(line)
    return 0


def cmd_synth_faces(args: argparse.Namespace) -> int:
    from auditor.synth_faces_folder import write_rafdb_layout

    out = write_rafdb_layout(
        args.out,
        n_train=args.train,
        n_test=args.test,
        seed=args.seed,
        noise_rates=args.noise_files,
    )
    print(out)
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from auditor.review import load_into_fiftyone
    from auditor.review_app import launch

    dataset = load_into_fiftyone(Path(args.run_dir), top=args.top)
    print(
        f"FiftyOne dataset {dataset.name}: {len(dataset)} samples, "
        f"saved views: {', '.join(dataset.list_saved_views())}"
    )
    if not args.launch:
        return 0
    launch(dataset, args.address, args.port)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from auditor.corrections import export_relabels

    out, rows, lines = export_relabels(
        Path(args.run_dir),
        from_fiftyone=args.from_fiftyone,
        out=args.out,
        top=args.top,
        include_reviewed=args.include_reviewed,
        second_look=args.second_look,
        reviewer=args.reviewer,
        force=args.force,
    )
    for line in [f"{rows} rows", *lines]:
        print(line, file=sys.stderr)
    print(out)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from auditor.corrections import apply_relabels

    counts = apply_relabels(
        Path(args.run_dir), Path(args.relabels), args.out, reviewer=args.reviewer, force=args.force
    )
    print(", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    print(args.out)
    return 0
