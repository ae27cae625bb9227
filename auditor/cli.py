"""The `audit` command line: parse, call, print. Exit codes: 0 success, 2 bad usage or input
(the message says what to fix), 1 unexpected failure."""

from __future__ import annotations

import argparse
import functools
import math
import os
import signal
import sys
from pathlib import Path

from auditor.crash import crash_lines, debugging
from auditor.errors import UserError
from auditor.label_sources import label_source_problems
from auditor.plugins import load_plugins


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
    """Every option is validated here, before any training process starts (`--nproc` included)."""
    from auditor.config import from_dict, resolve
    from auditor.datasets.registry import get_entry, load_registry
    from auditor.write_guard import check_out_root

    under_torchrun = "LOCAL_RANK" in os.environ
    cli = {k: v for k, v in vars(args).items() if k not in ("command", "func", "dataset", "resume", "nproc", "argv")}  # fmt: skip
    resume = None
    processes = args.nproc or 1
    if args.resume:
        from auditor.outputs.run_folder import resumable_manifest

        given = sorted(f"--{k.replace('_', '-')}" for k, v in cli.items() if v is not None)
        if args.dataset or given:
            raise UserError(f"--resume continues a run with its own settings; drop {args.dataset or ''} {' '.join(given)}".replace("  ", " "))  # fmt: skip
        manifest = resumable_manifest(Path(args.resume))
        processes = int(manifest.get("processes", 1))
        if args.nproc is not None and args.nproc != processes:
            raise UserError(f"--resume: the run trains with {processes} process(es); drop --nproc {args.nproc}")  # fmt: skip
        resume = (Path(args.resume), manifest)
        args.dataset = manifest["dataset"]
    if not args.dataset:
        raise UserError("audit run needs a DATASET (see `audit datasets`) or --resume RUN_DIR")
    entry = get_entry(args.dataset, load_registry())
    if resume is None:
        config = resolve(entry.name, cli, entry.defaults, where=entry.where())
        # a run folder inside a dataset would be read as data (an image folder's new class)
        check_out_root(config.out, dataset_roots=[entry.resolve_root(config.root)])
        argv = ["audit", *args.argv]
    else:
        config = from_dict(entry.name, resume[1]["config"])
        argv = resume[1]["command"]
    if processes > 1 and not under_torchrun:
        return launch_processes(processes, args.argv)

    from auditor.ledger import run_sentence
    from auditor.outputs.run_folder import read_samples
    from auditor.run import configure_threads, execute
    from auditor.summary import summary_lines
    from auditor.training import distributed

    configure_threads()
    distributed.init_from_env(config.device)
    run_dir, metrics = execute(config, entry, argv, resume)
    if distributed.rank() == 0:
        for line in summary_lines(metrics):
            print(line)
        reviewed = run_sentence(run_dir, read_samples(run_dir))
        if reviewed:
            print(reviewed, file=sys.stderr)
        print(run_dir)
    return 0


def launch_processes(nproc: int, argv: list[str]) -> int:
    """`audit run ... --nproc N` is `torchrun --standalone --nproc-per-node N -m auditor run ...`
    (through `auditor.launch`, which ends in one sentence, not torchrun's traceback).
    Interrupted (Ctrl-C, SIGTERM), it passes SIGTERM on to torchrun, which stops the training
    processes (the first marks the run folder `interrupted`), and waits for them. Killed outright
    (SIGKILL), it takes torchrun with it on Linux: the kernel sends torchrun SIGTERM."""
    import subprocess

    for i, arg in enumerate(argv):  # drop --nproc N / --nproc=N
        if arg == "--nproc":
            argv = argv[:i] + argv[i + 2 :]
            break
        if arg.startswith("--nproc="):
            argv = argv[:i] + argv[i + 1 :]
            break
    command = [sys.executable, "-m", "auditor.launch", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "auditor", *argv]  # fmt: skip
    launcher = subprocess.Popen(command, preexec_fn=term_with_parent if sys.platform == "linux" else None)  # fmt: skip
    try:
        return launcher.wait()
    except KeyboardInterrupt:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=120)
        except subprocess.TimeoutExpired:
            launcher.kill()
        raise


def term_with_parent() -> None:
    """Run in the child before exec: ask the kernel for SIGTERM when this parent dies
    (prctl PR_SET_PDEATHSIG = 1)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


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
    from auditor.datasets.synth_faces import write_rafdb_layout

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
    from auditor.review import launch, load_into_fiftyone

    dataset = load_into_fiftyone(Path(args.run_dir), top=args.top)
    print(f"FiftyOne dataset {dataset.name}: {len(dataset)} samples, "
          f"saved views: {', '.join(dataset.list_saved_views())}")  # fmt: skip
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
        force=args.force,
    )
    for line in [f"{rows} rows", *lines]:
        print(line, file=sys.stderr)
    print(out)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from auditor.corrections import apply_relabels

    counts = apply_relabels(Path(args.run_dir), Path(args.relabels), args.out, force=args.force)
    print(", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    print(args.out)
    return 0


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` states every default: appends "(default X)" to an option's help, as
    `auditor.config.add_flag` writes it for `audit run`'s generated flags, unless the help
    already states it, or the default is None (nothing is set unless given), a bool (an on/off
    flag, off by default unless its help says otherwise) or argparse's SUPPRESS (--help)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, argparse.SUPPRESS) or isinstance(default, bool):
            return text
        return f"{text} (default %(default)s)"


def int_at_least(text: str, minimum: int) -> int:
    """`text` as a whole number no smaller than `minimum`; argparse says why not (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text}: must be at least {minimum}")
    return value


def positive_int(text: str) -> int:
    return int_at_least(text, 1)


def count(text: str) -> int:
    return int_at_least(text, 0)


def noise_rates(text: str) -> tuple[float, ...]:
    """`--noise-files`: comma-separated noise rates, each a number in [0, 1)."""
    rates = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            rate = float(item)
        except ValueError:
            rate = math.nan
        if not 0 <= rate < 1:  # NaN too
            raise argparse.ArgumentTypeError(
                f"{item!r} is not a noise rate: give numbers in [0, 1)"
            )
        rates.append(rate)
    return tuple(rates)


FORCE_HELP = (
    "overwrite an existing output file, never a dataset's file nor a run folder's "
    "(default: refused)"
)


def build_parser(run_flags: bool = True) -> argparse.ArgumentParser:
    """Every command's flags. `audit run`'s option flags are generated from the declared
    options (`auditor.config.add_run_flags`: the methods of loaded plug-ins have theirs);
    building them imports the methods (torch), so `run_flags=False` leaves them out for the
    other commands."""
    parser = argparse.ArgumentParser(
        prog="audit", description=__doc__.splitlines()[0], formatter_class=DefaultsHelpFormatter
    )
    every_command = functools.partial(
        argparse.ArgumentParser, formatter_class=DefaultsHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=every_command)

    p = sub.add_parser("datasets", help="list the dataset registry and what is found")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser(
        "run", help="train, record signals, score every training sample, write a run folder"
    )
    p.add_argument("dataset", nargs="?", help="a name from `audit datasets`")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted or failed run in its folder, with its own settings "
        "(default: a new run)",
    )
    if run_flags:
        from auditor.config import add_run_flags

        add_run_flags(p)
    p.add_argument(
        "--nproc",
        type=positive_int,
        help="train with N processes (torchrun; gloo on CPU, NCCL on GPU); results written once "
        "(default 1)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "score", help="probability-only detectors on your own out-of-sample predictions"
    )
    p.add_argument(
        "--pred-probs", required=True, help=".npy [N, K] out-of-sample class probabilities"
    )
    p.add_argument("--labels", required=True, help=".npy [N] given labels (0..K-1)")
    p.add_argument(
        "--true-labels", help=".npy [N] true labels, for detection metrics (default: none)"
    )
    p.add_argument("--out", default="reports", help="output root: writes OUT/score/<time>-probs/")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "compare", help="one table of every detector x run, with test (or validation) accuracy"
    )
    p.add_argument("run_dirs", nargs="+", help="run folders (from audit run or audit score)")
    p.add_argument(
        "--out",
        help="an existing folder, or one ending in /, to write compare.csv, compare.parquet, "
        "compare-accuracy.csv and compare-pr.png in; any other OUT is a file prefix: OUT.csv, "
        "OUT.parquet, OUT-accuracy.csv, OUT-pr.png (default: the prefix reports/compare/<time>)",
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("review", help="load a run into FiftyOne and open the App for annotators")
    p.add_argument("run_dir")
    p.add_argument("--address", default="127.0.0.1", help="address the App binds to")
    p.add_argument("--port", type=int, default=5151, help="port the App listens on")
    p.add_argument(
        "--top", type=positive_int, help="size of each detector's top-k view (default: flagged)"
    )
    p.add_argument(
        "--no-launch",
        dest="launch",
        action="store_false",
        help="only create or update the FiftyOne dataset and its saved views (default: also "
        "open the App)",
    )
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("export", help="write the relabel CSV (suspects, or annotators' decisions)")
    p.add_argument("run_dir")
    p.add_argument(
        "--from-fiftyone",
        action="store_true",
        help="the decisions marked in FiftyOne (relabel / keep / drop, label:<class>, corrected) "
        "instead of the suspects (default: the suspects)",
    )
    p.add_argument(
        "--top",
        type=positive_int,
        help="export the N most suspect samples, flagged or not (default: the flagged ones)",
    )
    p.add_argument(
        "--include-reviewed",
        action="store_true",
        help="export samples the review ledger says were reviewed too (default: left out)",
    )
    p.add_argument(
        "--out",
        help="CSV to write (default <run>/suspects.csv, suspects-top<N>.csv with --top, "
        "relabel-reviewed.csv with --from-fiftyone, rewritten by each export); never a file "
        "the run wrote, nor one in a dataset's root",
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "apply", help="write a corrected label file in the dataset's format from a relabel CSV"
    )
    p.add_argument("run_dir")
    p.add_argument("--relabels", required=True, help="relabel CSV with decisions")
    p.add_argument(
        "--out", required=True, help="new label file (never the dataset's own, nor in its root)"
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("synth-faces", help="write procedural faces in the RAF-DB layout")
    p.add_argument(
        "out", help="folder to write: a new or empty one, or an earlier synth-faces output"
    )
    p.add_argument("--train", type=positive_int, default=700, help="training images")
    p.add_argument("--test", type=count, default=210, help="test images")
    p.add_argument("--seed", type=count, default=0, help="seed of the faces and the noise files")
    p.add_argument(
        "--noise-files",
        type=noise_rates,
        default=(),
        help="comma-separated rates in [0, 1), e.g. 0.1,0.2,0.3 -> noise01.txt ... (default: none)",
    )
    p.set_defaults(func=cmd_synth_faces)
    return parser


MAIN_PID = os.getpid()


def terminate(signum: int, frame: object) -> None:
    """SIGTERM ends a run like Ctrl-C: the run folder is marked interrupted, not left running.
    Worker processes forked from us (cleanlab's pool) die of it as usual."""
    if os.getpid() != MAIN_PID:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise KeyboardInterrupt


def early_problems(argv: list[str]) -> list[str]:
    """`audit run`'s contradictions among the label-source options typed
    (`auditor.label_sources`), found before the run flags are built: building them imports the
    methods (torch), seconds before any message. Flags this small parser does not know are left
    to the full one, and so are values it cannot read (`--noise-rate x`) and abbreviations."""
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--labels", "--noise-file", "--noise-rate"):
        early.add_argument(flag)
    typed, _ = early.parse_known_args(argv)
    values = vars(typed)
    try:
        values["noise_rate"] = float(values["noise_rate"] or 0)
    except ValueError:
        return []
    return label_source_problems(values)


def main(argv: list[str] | None = None) -> int:
    """`audit ARGV...` (default: the process's own arguments)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    signal.signal(signal.SIGTERM, terminate)
    # Ctrl-C interrupts even when started from a shell that ignores SIGINT for background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        load_plugins()
        command = next((a for a in argv if not a.startswith("-")), None)
        problems = early_problems(argv) if command == "run" else []
        if problems:
            raise UserError("; ".join(problems))
        args = build_parser(run_flags=command == "run").parse_args(argv)
        args.argv = argv
        return args.func(args)
    except UserError as err:
        print(f"audit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("audit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `audit datasets | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 128 + signal.SIGPIPE
    except Exception as err:  # a bug or the machine, not the user's input: auditor.crash
        if debugging():
            raise
        for line in crash_lines(err):
            print(line, file=sys.stderr)
        return 1
