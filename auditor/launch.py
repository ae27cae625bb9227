"""`audit run --nproc N`'s launcher: torchrun (`torch.distributed.run`) run in this process, so
that how it ends is one sentence, never torchrun's traceback. Stopped by a signal (the SIGTERM
`audit` passes on, or its parent's death): exit 130, as a stopped `audit run`, the training
processes having marked the run folder. A training process that failed: its own message is
already on stderr; exit with its code (2 for a refusal, 1 for an unexpected error)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """torchrun ARGV...; the exit code as the module docstring says."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv)
    except SignalException:
        return 130
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        print(
            f"audit: training process {rank} exited with code {failure.exitcode}; its "
            "message is above",
            file=sys.stderr,
        )
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
