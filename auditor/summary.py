"""The short table `audit run` prints at the end."""

from __future__ import annotations


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def summary_lines(metrics: dict) -> list[str]:
    lines = ["", "test accuracy    last    best   last5"]
    for method, acc in metrics["accuracy"].items():
        lines.append(
            f"  {method:<12} {_fmt(acc['last'])}  {_fmt(acc['best'])}  {_fmt(acc['last5_mean'])}"
        )
    noise = metrics.get("noise", {})
    detectors = metrics.get("detectors") or {}
    if not detectors:
        lines.append(
            "detectors: truth unknown (no injected noise or noise file), no detection metrics"
        )
        return lines
    lines.append(
        f"detectors (real noise rate {noise.get('real_rate', 0):.3f})     AUROC      AP   P@k"
    )
    ranked = sorted(detectors.items(), key=lambda kv: -(kv[1]["ap"] or 0))
    for name, m in ranked:
        extra = f"  flagged {m['flagged']}, F1 {m['f1']:.3f}" if "flagged" in m else ""
        lines.append(
            f"  {name:<28} {_fmt(m['auroc'])}  {_fmt(m['ap'])}  {_fmt(m['precision_at_k'])}{extra}"
        )
    return lines
