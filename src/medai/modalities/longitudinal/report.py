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
    return {"by_hours": rows, "alerts": alerts}


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
    return {"metrics": {"event1_score": event1, "early_warning": warning},
            "tables": [early_warning.table(warning["by_hours"], warning["alerts"])]}


def evaluation_extras(model, inputs, y, scores) -> dict[str, Any]:
    if not _binary(model):
        return {}
    from medai.modalities.longitudinal.reading import event_hours

    table = model.cache.pop("labels_table", None)
    events = event_hours(table, inputs.X.ids) if table is not None else None
    return {"event1_score": early_warning.event1_score(y, scores, model.threshold),
            "early_warning": _early_warning(model, inputs.X, y, events)}
