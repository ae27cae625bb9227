"""The `audit` argument parser: every command's flags (`audit run`'s option flags generated
from the declared options, `auditor.run_flags.add_run_flags`), each stating its default."""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable

from auditor import commands


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` states every default: appends "(default X)" to an option's help, as
    `auditor.run_flags.add_flag` writes it for `audit run`'s generated flags, unless the help
    already states it, or the default is None (nothing is set unless given), a bool (an on/off
    flag, off by default unless its help says otherwise) or argparse's SUPPRESS (--help)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, argparse.SUPPRESS) or isinstance(default, bool):
            return text
        return f"{text} (default %(default)s)"


# Upper bounds of the count options outside `audit run`'s declared ones (auditor.config):
# a larger value is never what is meant, and would run unbounded, overflow or wait for nothing.
MAX_COUNT = 10**9  # --top: samples shown or exported
MAX_PROCESSES = 256  # --nproc: training processes on one machine
MAX_SEED = 2**32 - 1  # NumPy's legacy seeding takes 0 to 2**32 - 1 (as `audit run --seed`)
# synth-faces: images of a split, each drawn in memory first (30 KB): 20,000 (RAF-DB has 12,271
# training images) take about 1.2 GB
MAX_IMAGES = 20_000


def int_between(text: str, minimum: int, maximum: int) -> int:
    """`text` as a whole number from `minimum` to `maximum`; argparse says why not (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text[:40]}: must be at least {minimum}")
    if value > maximum:
        raise argparse.ArgumentTypeError(f"{text[:40]}: must be at most {maximum:,}")
    return value


def bounded(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse `type` reading a whole number from `minimum` to `maximum`."""
    return functools.partial(int_between, minimum=minimum, maximum=maximum)


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


DESCRIPTION = "The `audit` command line: parse, call, print."
REVIEWER_HELP = (
    "who made the decisions, recorded with each in the review ledger (default: "
    "$AUDIT_REVIEWER, else the login name)"
)
FORCE_HELP = (
    "overwrite an existing output file, never a dataset's file nor a run folder's "
    "(default: refused)"
)


def build_parser(run_flags: bool = True) -> argparse.ArgumentParser:
    """Every command's flags. `audit run`'s option flags are generated from the declared
    options (`auditor.run_flags.add_run_flags`: the methods of loaded plug-ins have theirs);
    building them imports the methods (torch), so `run_flags=False` leaves them out for the
    other commands."""
    parser = argparse.ArgumentParser(
        prog="audit", description=DESCRIPTION, formatter_class=DefaultsHelpFormatter
    )
    every_command = functools.partial(
        argparse.ArgumentParser, formatter_class=DefaultsHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=every_command)

    p = sub.add_parser("datasets", help="list the dataset registry and what is found")
    p.set_defaults(func=commands.cmd_datasets)

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
        from auditor.fiftyone_source import add_source_flags
        from auditor.run_flags import add_run_flags

        add_run_flags(p)
        add_source_flags(p)
    p.add_argument(
        "--nproc",
        type=bounded(1, MAX_PROCESSES),
        help="train with N processes (torchrun; gloo on CPU, NCCL on GPU); results written once "
        "(default 1)",
    )
    p.set_defaults(func=commands.cmd_run)

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
    p.set_defaults(func=commands.cmd_score)

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
    p.set_defaults(func=commands.cmd_compare)

    p = sub.add_parser("review", help="load a run into FiftyOne and open the App for annotators")
    p.add_argument("run_dir")
    p.add_argument("--address", default="127.0.0.1", help="address the App binds to")
    p.add_argument("--port", type=bounded(1, 65535), default=5151, help="port the App listens on")
    p.add_argument(
        "--top",
        type=bounded(1, MAX_COUNT),
        help="size of each detector's top-k view (default: flagged)",
    )
    p.add_argument(
        "--no-launch",
        dest="launch",
        action="store_false",
        help="only create or update the FiftyOne dataset and its saved views (default: also "
        "open the App)",
    )
    p.set_defaults(func=commands.cmd_review)

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
        type=bounded(1, MAX_COUNT),
        help="export the N most suspect samples, flagged or not (default: the flagged ones)",
    )
    p.add_argument(
        "--include-reviewed",
        action="store_true",
        help="export samples the review ledger says were reviewed too (default: left out)",
    )
    p.add_argument(
        "--second-look",
        action="store_true",
        help="export the reviewed samples this run contradicts (kept but flagged again; "
        "relabelled, flagged again, another class suggested) with the earlier decision, "
        "reviewer and note (default: the suspects)",
    )
    p.add_argument("--reviewer", help=REVIEWER_HELP)
    p.add_argument(
        "--out",
        help="CSV to write (default <run>/suspects.csv, suspects-top<N>.csv with --top, "
        "second-look.csv with --second-look, relabel-reviewed.csv with --from-fiftyone, "
        "rewritten by each export); never a file the run wrote, nor one in a dataset's root",
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=commands.cmd_export)

    p = sub.add_parser(
        "apply", help="write a corrected label file in the dataset's format from a relabel CSV"
    )
    p.add_argument("run_dir")
    p.add_argument("--relabels", required=True, help="relabel CSV with decisions")
    p.add_argument(
        "--out", required=True, help="new label file (never the dataset's own, nor in its root)"
    )
    p.add_argument("--reviewer", help=REVIEWER_HELP)
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=commands.cmd_apply)

    p = sub.add_parser("synth-faces", help="write procedural faces in the RAF-DB layout")
    p.add_argument(
        "out", help="folder to write: a new or empty one, or an earlier synth-faces output"
    )
    p.add_argument("--train", type=bounded(1, MAX_IMAGES), default=700, help="training images")
    p.add_argument("--test", type=bounded(0, MAX_IMAGES), default=210, help="test images")
    p.add_argument(
        "--seed",
        type=bounded(0, MAX_SEED),
        default=0,
        help="seed of the faces and the noise files",
    )
    p.add_argument(
        "--noise-files",
        type=noise_rates,
        default=(),
        help="comma-separated rates in [0, 1), e.g. 0.1,0.2,0.3 -> noise01.txt ... (default: none)",
    )
    p.set_defaults(func=commands.cmd_synth_faces)
    return parser
