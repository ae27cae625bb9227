"""Label-error detectors: pure functions from what training revealed to a score per sample.

Convention everywhere: higher score = more suspect. Detectors that also decide return flags.
Each registers itself (`auditor.detectors.registry.detector`); importing this package registers
the built-in families below. A new family is a new module here plus one name in this import.
"""

from auditor.detectors import attention, dynamics, neighbours, probabilities  # noqa: F401
