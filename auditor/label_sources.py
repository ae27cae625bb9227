"""Which label sources `audit run` may combine: a noise file, injected noise, a corrected label
file. Read from plain option values, without the training code, so the command line refuses a
contradiction among the options typed before it imports torch (`auditor.cli.early_problems`),
and the configuration refuses it again once merged with the preset and the dataset's defaults
(`auditor.config.relation_problems`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def label_source_problems(values: Mapping[str, Any]) -> list[str]:
    """The contradictions among `noise_file`, `noise_rate` and `labels` (absent keys: not set)."""
    noise_rate = values.get("noise_rate") or 0
    problems = []
    if values.get("noise_file") and noise_rate > 0:
        problems.append(
            "--noise-file and --noise-rate > 0 together: a noise file already sets the labels"
        )
    if values.get("labels") and values.get("noise_file"):
        problems.append("--labels and --noise-file together: choose one label source")
    if values.get("labels") and noise_rate > 0:
        problems.append(
            "--labels and --noise-rate > 0 together: a label file is trained on as it is"
        )
    return problems
