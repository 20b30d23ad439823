"""What the report and ``medai evaluate`` add for longitudinal models: the Event 1 score, discrimination by hours
of data seen, and alerts from an hour-by-hour replay (binary targets)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.modalities.longitudinal import early_warning

REPLAY_LIMIT = 2000  # stays replayed hour by hour for the alert figures (a seeded sample beyond that)


def _early_warning(model, stays, y, event_hours, seed: int = 0) -> dict[str, Any]:
    horizon = float(np.max(stays.horizon)) if len(stays) else 0.0
    hours = [h for h in early_warning.HOURS if h < horizon] + [horizon]
    rows = early_warning.by_hours(model, stays, y, hours, seed=seed)
    alerts = None
    threshold = model.threshold
    if threshold is not None and len(stays):
        pick = np.arange(len(stays))
        if len(pick) > REPLAY_LIMIT:
            pick = np.sort(np.random.default_rng(seed).choice(pick, REPLAY_LIMIT, replace=False))
        grid, risk = early_warning.trajectories(model, stays.take(pick))
        events = None if event_hours is None else np.asarray(event_hours)[pick]
        alerts = early_warning.alert_summary(grid, risk, threshold, np.asarray(y)[pick], events, seed=seed)
        alerts["_timeline"] = (grid, risk, np.asarray(y)[pick])
    return {"by_hours": rows, "alerts": alerts}


def timeline_png(hours, risk, y, threshold: float, n: int = 8) -> bytes:
    """Risk trajectories of the stays with the highest final risk (red: the outcome happened) and the threshold."""
    from medai.evaluation.plots import png_bytes, pyplot

    fig, ax = pyplot().subplots(figsize=(6.0, 3.6), dpi=110)
    final = np.array([r[np.isfinite(r)][-1] if np.isfinite(r).any() else -1 for r in risk])
    for i in np.argsort(-final)[:n]:
        ax.plot(hours, risk[i], color="tab:red" if y[i] else "tab:blue", alpha=0.8, lw=1.2)
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("hours of data seen")
    ax.set_ylabel("risk")
    ax.set_title("Risk as data arrives (highest-risk test stays; red = outcome)")
    ax.legend(loc="upper left", fontsize=8)
    return png_bytes(fig)


def _binary(model) -> bool:
    return model.kind == "binary" and model.threshold is not None


def report_extras(model, X_test, y_test) -> dict[str, Any]:
    if not _binary(model) or len(X_test) == 0:
        return {}
    y = (np.asarray(y_test) == model.target.positive_index).astype(int)
    if len(np.unique(y)) < 2:
        return {}
    s = model.scores(X_test)
    event1 = early_warning.event1_score(y, s, model.threshold)
    warning = _early_warning(model, X_test, y, None)
    plots = {}
    if warning["alerts"]:
        grid, risk, picked = warning["alerts"].pop("_timeline")
        plots["risk_timeline"] = timeline_png(grid, risk, picked, model.threshold)
    return {"metrics": {"event1_score": event1, "early_warning": warning}, "plots": plots,
            "tables": [early_warning.table(warning["by_hours"], warning["alerts"])]}


def evaluation_extras(model, inputs, y, scores) -> dict[str, Any]:
    if not _binary(model):
        return {}
    from medai.modalities.longitudinal.reading import event_hours

    table = model.cache.pop("labels_table", None)
    events = event_hours(table, inputs.X.ids) if table is not None else None
    warning = _early_warning(model, inputs.X, y, events)
    if warning["alerts"]:
        warning["alerts"].pop("_timeline")
    return {"event1_score": early_warning.event1_score(y, scores, model.threshold), "early_warning": warning}
