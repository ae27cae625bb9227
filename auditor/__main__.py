"""`python -m auditor ...` is `audit ...` (what torchrun starts: `torchrun ... -m auditor run ...`)."""

from auditor.cli import main

raise SystemExit(main())
