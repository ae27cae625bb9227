"""Whether two runs' test accuracies differ by more than the run-to-run spread known of them,
for `audit compare` (`spread_lines`): the spread read from each run's last epochs and, where
given runs differ only in seed, across those seeds."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

SPREAD_FACTOR = 2  # a difference of test accuracy beyond this many spreads is called real
LAST_EPOCHS = 5  # the epochs of `last5_mean` (`auditor.evaluation.accuracy_protocols`)


def mean_se(per_epoch: list[float]) -> float | None:
    """The standard error of `last5_mean` read from the run itself: the sample standard
    deviation (n - 1) of the test accuracy of its last n <= LAST_EPOCHS epochs (the epochs
    `last5_mean` averages; NaN epochs left out as it leaves them) over sqrt(n); None for n < 2."""
    values = [v for v in per_epoch if v is not None and not math.isnan(v)][-LAST_EPOCHS:]
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) >= 2 else None


def spread_sentence(
    method: str,
    names: tuple[str, str],
    first: dict,
    other: dict,
    seed_std: float | None,
) -> str:
    """Whether run `names[1]`'s test accuracy differs from run `names[0]`'s by more than the
    run-to-run spread known of it. `first` and `other` are metrics.json `accuracy[method]` of
    the two runs; `seed_std` the sample standard deviation of `last5_mean` across seeds, where
    given runs differ only in seed (`seed_stds`), else None.

        d = last5_mean(other) - last5_mean(first)
        s_epochs = sqrt(mean_se(first)^2 + mean_se(other)^2)   the standard error of d
        s_seeds  = sqrt(2) x seed_std                          the spread of a difference
        within the spread when |d| <= SPREAD_FACTOR x max(s_epochs, s_seeds) (those known)

    The epoch-based spread stands in for the seed spread when only one run per setting exists;
    measured on the demo (bench/cleaning_loop.py, 3 seeds, before and after cleaning), a run's
    mean_se (ce 0.005-0.011, eac 0.005-0.018) is of the size of the across-seed std of
    last5_mean (ce 0.004-0.009, eac 0.014-0.019), whereas the raw epoch-to-epoch std
    (0.020-0.039) overstates it two- to three-fold."""
    d = other["last5_mean"] - first["last5_mean"]
    head = f"{method}: {names[1]} - {names[0]} = {d:+.3f}"
    errors = [mean_se(first["per_epoch"]), mean_se(other["per_epoch"])]
    spreads = {}
    if None not in errors:
        spreads["standard error from the last epochs"] = math.hypot(*errors)
    if seed_std is not None:
        spreads["across seeds, sqrt(2) x std"] = math.sqrt(2) * seed_std
    if not spreads:
        return f"{head}, spread unknown (under two epochs per run, one seed)"
    threshold = SPREAD_FACTOR * max(spreads.values())
    verdict = "within" if abs(d) <= threshold else "beyond"
    known = ", ".join(f"{name} {value:.3f}" for name, value in spreads.items())
    factor = f"{SPREAD_FACTOR}x" + (" the larger" if len(spreads) > 1 else "")
    return f"{head}, {verdict} the spread ({known}; {factor} = {threshold:.3f})"


def seed_stds(runs: list[tuple[Path, dict, dict]], method: str) -> list[float | None]:
    """Per run, the sample standard deviation of `method`'s `last5_mean` over the given runs
    that share its configuration except `seed` and `out` (manifest `config`, which names the
    dataset and the methods) and differ in seed; None for a run with no such sibling."""

    def key(manifest: dict) -> str | None:
        config = manifest.get("config")
        if config is None:  # `audit score` runs
            return None
        return json.dumps(
            {k: v for k, v in config.items() if k not in ("seed", "out")}, sort_keys=True
        )

    groups: dict[str, dict[object, float]] = {}
    for _, manifest, metrics in runs:
        mean = ((metrics.get("accuracy") or {}).get(method) or {}).get("last5_mean")
        if key(manifest) is not None and mean is not None:
            groups.setdefault(key(manifest), {})[manifest["config"]["seed"]] = mean
    out = []
    for _, manifest, _ in runs:
        means = list(groups.get(key(manifest), {}).values())
        out.append(statistics.stdev(means) if len(means) >= 2 else None)
    return out


def spread_lines(runs: list[tuple[Path, dict, dict]]) -> list[str]:
    """For every method with test accuracy in two or more runs, `spread_sentence` of each such
    run against the first (runs named `run1`, ... in the order given); for one pair the
    across-seed spread is the larger of the two runs' (`seed_stds`)."""
    methods = dict.fromkeys(m for _, _, met in runs for m in (met.get("accuracy") or {}))
    lines = []
    for method in methods:
        have = [
            i
            for i, (_, _, met) in enumerate(runs)
            if ((met.get("accuracy") or {}).get(method) or {}).get("last5_mean") is not None
        ]
        stds = seed_stds(runs, method)
        for i in have[1:]:
            first, other = runs[have[0]][2]["accuracy"][method], runs[i][2]["accuracy"][method]
            pair = [s for s in (stds[have[0]], stds[i]) if s is not None]
            names = (f"run{have[0] + 1}", f"run{i + 1}")
            lines.append(spread_sentence(method, names, first, other, max(pair) if pair else None))
    if lines:
        lines.insert(
            0,
            "test accuracy (last-5 mean), each run against the first: a difference "
            f"beyond {SPREAD_FACTOR}x the spread is taken as real",
        )
    return lines
