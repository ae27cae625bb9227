"""The `audit` command line: parse, call, print. Exit codes: 0 success, 2 bad usage or input
or a problem of the machine on a path (the message says what to fix, `auditor.crash`), 1
unexpected failure, 130 interrupted. The parser is `auditor.cli_parser`, the commands
`auditor.commands`."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from auditor.cli_parser import build_parser
from auditor.crash import check_debug, crash_lines, debugging, environment_problem
from auditor.errors import UserError, shorten_words
from auditor.label_sources import label_source_problems
from auditor.plugins import load_plugins

MAIN_PID = os.getpid()
STOPPING = [False]  # set by the first SIGINT or SIGTERM of the main process


def terminate(signum: int, frame: object) -> None:
    """SIGTERM (and SIGINT) end a run like Ctrl-C: the run folder is marked interrupted, not
    left running. Only the first does: a second one while the first unwinds (marking the run
    interrupted, closing progress bars) is ignored quietly, where raising again inside a
    `finally` or an object's `__del__` (tqdm's) printed a traceback. Worker processes forked
    from us (cleanlab's pool) die of SIGTERM as usual, and are interrupted by SIGINT."""
    if os.getpid() != MAIN_PID:
        if signum == signal.SIGTERM:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt
    if STOPPING[0]:
        return
    STOPPING[0] = True
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
    STOPPING[0] = False
    signal.signal(signal.SIGTERM, terminate)
    # Ctrl-C interrupts even when started from a shell that ignores SIGINT for background jobs
    signal.signal(signal.SIGINT, terminate)
    try:
        check_debug()
        load_plugins()
        command = next((a for a in argv if not a.startswith("-")), None)
        problems = early_problems(argv) if command == "run" else []
        if problems:
            raise UserError("; ".join(problems))
        args = build_parser(run_flags=command == "run").parse_args(argv)
        args.argv = argv
        return args.func(args)
    except UserError as err:
        print(f"audit: error: {shorten_words(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # from here to the process's end, a further signal is ignored at the OS level: Python
        # resets its own handlers to the default while it shuts down (torch's teardown can take
        # longer than a second Ctrl-C), and a signal then killed the process (-2), not 130
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        print("audit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `audit datasets | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 128 + signal.SIGPIPE
    except OSError as err:
        return machine_problem(err)
    except Exception as err:
        return unexpected(err)


def machine_problem(err: OSError) -> int:
    """A file-system error on a path: one sentence and exit 2 (`auditor.crash`); else a bug."""
    problem = environment_problem(err)
    if problem is None or debugging():
        return unexpected(err)
    print(f"audit: error: {problem}", file=sys.stderr)
    return 2


def unexpected(err: Exception) -> int:
    """A bug or the machine, not the user's input (`auditor.crash`): one sentence, exit 1; the
    traceback itself under AUDIT_DEBUG."""
    if debugging():
        raise err
    for line in crash_lines(err):
        print(shorten_words(line), file=sys.stderr)
    return 1
