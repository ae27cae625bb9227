"""bench/scale.py's table: a row per measured stage, its targets and whether they are met, as
markdown for the README."""

from __future__ import annotations

from dataclasses import dataclass, field

GB = 1e9
RSS_TARGET = 6 * GB  # the peak resident memory of every stage


@dataclass
class Row:
    """One line of the table. `checks`: (target, met or None when not measured)."""

    stage: str
    n: int | None
    size: int | None
    wall_s: float | None = None
    per_s: float | None = None
    rss: float | None = None  # bytes
    checks: list[tuple[str, bool | None]] = field(default_factory=list)
    failed: str = ""


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(rows: list[Row]) -> str:
    lines = [
        "| stage | N | size | wall s | images/s | peak RSS GB | target | met? |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        known = [met for _, met in r.checks if met is not None]
        met = "failed" if r.failed else ("-" if not known else "yes" if all(known) else "no")
        lines.append(
            f"| {r.stage} | {fmt(r.n, ',')} | {fmt(r.size, 'd')} | {fmt(r.wall_s, '.1f')} | "
            f"{fmt(r.per_s, ',.0f')} | {fmt(None if r.rss is None else r.rss / GB, '.2f')} | "
            f"{'; '.join(t for t, _ in r.checks) or '-'} | {met} |"
        )
    return "\n".join(lines)


def rss_check(row: Row) -> Row:
    if row.rss is not None:
        row.checks.insert(0, (f"RSS < {RSS_TARGET / GB:.0f} GB", row.rss < RSS_TARGET))
    return row


def ratio_check(row: Row, base: Row, target: float, what: str) -> None:
    ratio = row.per_s / base.per_s if row.per_s and base.per_s else None
    row.checks.append(
        (f">= {target}x {what} ({fmt(ratio, '.2f')}x)", None if ratio is None else ratio >= target)
    )
