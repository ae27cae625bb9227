"""The `audit` command line: parse, call, print. Exit codes: 0 success, 2 bad usage or input
(the message says what to fix), 1 unexpected failure. The parser is `auditor.cli_parser`, the
commands `auditor.commands`."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from auditor.cli_parser import build_parser
from auditor.crash import crash_lines, debugging
from auditor.errors import UserError
from auditor.label_sources import label_source_problems
from auditor.plugins import load_plugins

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
