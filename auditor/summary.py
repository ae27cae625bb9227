"""The short table `audit run` and `audit score` print at the end."""

from __future__ import annotations

SHOWN = 12  # detectors listed; all of them are in metrics.json


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def summary_lines(metrics: dict) -> list[str]:
    lines = [""]
    if metrics["accuracy"]:
        split = metrics.get("accuracy_split") or "test"
        lines.append(f"{split} accuracy")
        lines.append(f"  {'':<12} {'last':>6}  {'best':>6}  {'last5':>6}")
        for method, acc in metrics["accuracy"].items():
            lines.append(
                f"  {method:<12} {_fmt(acc['last'])}  {_fmt(acc['best'])}  "
                f"{_fmt(acc['last5_mean'])}"
            )
    for method, curves in metrics.get("memorisation", {}).items():
        lines.append(f"  {method}: {curves['verdict']}")
    noise = metrics.get("noise", {})
    detectors = metrics.get("detectors") or {}
    if not detectors:
        flagged = (metrics.get("ensemble") or {}).get("flagged")
        if flagged is not None:
            lines.append(f"flagged {flagged:,} samples as suspects (flag_suspicion)")
        lines.append(
            "detectors: truth unknown (no injected noise or noise file), no detection metrics"
        )
        return lines
    lines.append(
        f"detectors (real noise rate {noise.get('real_rate', 0):.3f})     AUROC      AP   P@k"
    )
    ranked = sorted(detectors.items(), key=lambda kv: -(kv[1]["ap"] or 0))
    shown = ranked[:SHOWN] + [kv for kv in ranked[SHOWN:] if kv[0] == "suspicion"]
    for name, m in shown:
        extra = f"  flagged {m['flagged']}, F1 {m['f1']:.3f}" if "flagged" in m else ""
        lines.append(
            f"  {name:<28} {_fmt(m['auroc'])}  {_fmt(m['ap'])}  {_fmt(m['precision_at_k'])}{extra}"
        )
    if len(ranked) > len(shown):
        lines.append(f"  ... {len(ranked) - len(shown)} more detectors in metrics.json")
    return lines
