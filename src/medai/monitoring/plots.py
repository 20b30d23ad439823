"""Pictures of a monitoring report: drift over windows, and performance over windows against the validated range."""

from __future__ import annotations

import base64
from typing import Any

from medai.evaluation.plots import png_bytes, pyplot


def drift_png(report: dict[str, Any]) -> bytes | None:
    windows = report.get("drift") or []
    if not windows:
        return None
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.8), sharex=True)
    x = list(range(1, len(windows) + 1))
    for key, label in (("max_feature_psi", "largest feature PSI"), ("prediction_psi", "prediction PSI")):
        values = [w.get(key) for w in windows]
        if any(v is not None for v in values):
            top.plot(x, [float("nan") if v is None else v for v in values], marker="o", label=label)
    psi_min = report["settings"]["psi_min"]
    top.axhline(psi_min, color="grey", linestyle=":", label=f"PSI floor {psi_min}")
    top.axhline(0.25, color="tab:red", linestyle="--", linewidth=0.8, label="PSI 0.25 (major)")
    top.set_ylabel("PSI")
    top.legend(fontsize=7)
    top.set_title(f"Drift of {report['model']} v{report['version']} (windows of {report['settings']['window']})")
    bottom.bar(x, [len(w["drifted"]) for w in windows], color="tab:orange")
    bottom.set_ylabel("columns drifted")
    bottom.set_xlabel("window (oldest to newest)")
    return png_bytes(fig)


def performance_png(report: dict[str, Any]) -> bytes | None:
    windows = report.get("performance") or []
    if not windows:
        return None
    from medai.evaluation.kinds import evaluator_for

    headline = evaluator_for(report["kind"]).headline
    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(6.4, 4.8), sharex=True)
    x = list(range(1, len(windows) + 1))
    for ax, getter, label, ref in (
        (axes[0], lambda w: w["metrics"].get(headline), headline,
         report["validated"]["test"].get(headline) or {}),
        (axes[1], lambda w: w.get("coverage"), "conformal coverage",
         (report["validated"].get("conformal") or {}).get("coverage") or {}),
    ):
        points = [getter(w) for w in windows]
        xs = [i for i, p in zip(x, points, strict=True) if p and p.get("value") is not None]
        ps = [p for p in points if p and p.get("value") is not None]
        if ps:
            values = [p["value"] for p in ps]
            lows = [p["value"] - (p["ci_low"] if p.get("ci_low") is not None else p["value"]) for p in ps]
            highs = [(p["ci_high"] if p.get("ci_high") is not None else p["value"]) - p["value"] for p in ps]
            ax.errorbar(xs, values, yerr=[lows, highs], marker="o", capsize=3, label=f"{label} (95% CI)")
        if ref.get("ci_low") is not None and ref.get("ci_high") is not None:
            ax.axhspan(ref["ci_low"], ref["ci_high"], color="tab:green", alpha=0.15, label="validated 95% CI")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    axes[0].set_title(f"Performance of {report['model']} v{report['version']} as outcomes arrive")
    axes[1].set_xlabel(f"window of {report['settings']['outcome_window']} outcomes (oldest to newest)")
    return png_bytes(fig)


def report_plots(report: dict[str, Any]) -> dict[str, str]:
    """``{name: base64 PNG}`` for the pictures the report has data for."""
    out = {}
    for name, make in (("drift", drift_png), ("performance", performance_png)):
        png = make(report)
        if png is not None:
            out[name] = base64.b64encode(png).decode("ascii")
    return out
