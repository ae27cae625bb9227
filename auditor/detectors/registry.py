"""The detector registry: each detector declares, beside its function, its name and what it
reads; `auditor.scoring` runs every registered detector on every method's evidence that has
those inputs.

    @detector("aum", reads=("signal:margin",))
    def area_under_margin(margin: np.ndarray) -> np.ndarray: ...

Inputs a detector can read (`auditor.evidence.INPUTS`, `MethodEvidence.inputs`): `labels` (the
given labels [N]), `probs` (out-of-sample with --folds, else the early-learning reading when the
run memorises, else the model at its epoch of best test accuracy, else the final model's;
`MethodEvidence.probs`), `final_probs` (the
final model's, in-sample), `embeddings` (the final model's pooled features), `final_labels` (the
labels a relabelling method ended on; only methods that relabel have them),
`flip_attention` (the final model's, `auditor.training.attention`) and
`signal:<name>` (a per-epoch signal [epochs, N]: the common `loss`, `margin`, `correct`,
`p_given` and each method's own). A detector is skipped for a method whose evidence lacks one of
its inputs. The function returns a score [N], higher = more suspect; with `decides=True` it
returns (score [N], flags [N] bool). With `votes=False` (declared from measurement: a
detector that ranks clean samples first) its score is still written, but it counts in no
`detector_votes` and has no `top-` view in `audit review`. See docs/detectors.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from auditor.evidence import INPUTS, SIGNAL  # declared beside the evidence they read


@dataclass(frozen=True)
class Detector:
    name: str
    function: Callable[..., Any]
    reads: tuple[str, ...]
    decides: bool = False
    votes: bool = True  # False: measured to rank clean samples first; `audit review` skips it

    def signals(self) -> list[str]:
        """The per-epoch signals this detector reads."""
        return [r[len(SIGNAL) :] for r in self.reads if r.startswith(SIGNAL)]


DETECTORS: dict[str, Detector] = {}


def detector(
    name: str, *, reads: tuple[str, ...], decides: bool = False, votes: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as detector `name` (also usable as a plain call:
    `detector("cleanlab", reads=...)(partial(...))`). Returns the function unchanged."""
    unknown = [r for r in reads if r not in INPUTS and not r.startswith(SIGNAL)]
    if unknown:
        raise ValueError(f"detector {name!r} reads unknown inputs {unknown}; known: {INPUTS}")

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in DETECTORS and DETECTORS[name].function is not function:
            raise ValueError(f"two detectors are named {name!r}")
        DETECTORS[name] = Detector(name, function, reads, decides, votes)
        return function

    return register


def run_detector(d: Detector, inputs: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(score, flags or None) of detector `d` on its inputs, in the order of `d.reads`."""
    out = d.function(*inputs)
    return out if d.decides else (out, None)


def detector_of(name: str) -> str | None:
    """The registered detector a scored name belongs to: `name` itself (`audit score`), else the
    longest registered name that `name` ends with after a `<method>_` prefix; None for
    `suspicion` and names no registered detector has."""
    if name in DETECTORS:
        return name
    matches = [d for d in DETECTORS if name.endswith(f"_{d}")]
    return max(matches, key=len, default=None)


def voting(name: str) -> bool:
    """Whether the scored `name` counts in `detector_votes` and has a `top-` view: its
    detector's declared `votes`; True for a name of no registered detector."""
    detector = detector_of(name)
    return detector is None or DETECTORS[detector].votes


def unscored_signals(extra_signals: tuple[str, ...]) -> list[str]:
    """The signals among `extra_signals` that no registered detector reads."""
    read = {s for d in DETECTORS.values() for s in d.signals()}
    return [s for s in extra_signals if s not in read]
