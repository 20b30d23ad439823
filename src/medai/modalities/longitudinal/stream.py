"""Replaying stays through a model hour by hour: the trajectories ``medai stream replay`` writes and the figures
an early-warning system is judged by."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from medai.modalities.longitudinal import early_warning


def replay_frame(model, inputs, step: float = 1.0) -> tuple[pd.DataFrame, dict[str, Any]]:
    stays = inputs.X
    hours, risk = early_warning.trajectories(model, stays, step)
    threshold = model.threshold if model.threshold is not None else 0.5
    alerts = early_warning.alert_hours(hours, risk, threshold)
    live = np.isfinite(risk)
    row, col = np.nonzero(live)
    alert_set = {(i, h) for i, hs in enumerate(alerts) for h in hs}
    frame = pd.DataFrame({
        inputs.id_name: stays.ids[row], "hour": hours[col], "risk": risk[row, col],
        "above_threshold": risk[row, col] >= threshold,
        "alert": [(i, hours[j]) in alert_set for i, j in zip(row, col, strict=True)],
    })
    summary: dict[str, Any] = {"stays": int(len(stays)), "hours": int(len(hours)), "step_hours": float(step),
                               "threshold": float(threshold), "alerts": int(sum(len(a) for a in alerts)),
                               "notes": list(inputs.notes)}
    if inputs.y is not None and model.kind == "binary":
        y = (model.target.encode(inputs.y, "the labels") == model.target.positive_index).astype(int)
        if len(np.unique(y)) == 2:
            from medai.modalities.longitudinal.reading import event_hours

            table = model.cache.pop("labels_table", None)
            events = event_hours(table, stays.ids) if table is not None else None
            summary["early_warning"] = {
                "by_hours": early_warning.by_hours(model, stays, y, seed=0),
                "alerts": early_warning.alert_summary(hours, risk, threshold, y, events)}
    return frame, summary
