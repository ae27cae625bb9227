"""`python -m auditor ...` is `audit ...` (what torchrun starts: `torchrun ... -m auditor
run ...`)."""

from auditor.cli import main

if __name__ == "__main__":  # not when a spawned worker imports this module
    raise SystemExit(main())
