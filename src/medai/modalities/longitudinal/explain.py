"""Explanations of a stay's risk: which variables moved it (SHAP over the summary features, grouped by variable)
and, for the networks, which hours (the change in risk as each hour's observations arrive)."""

from __future__ import annotations

from typing import Any

import numpy as np


def explain_stays(model, stays, top_k: int = 5) -> list[dict[str, Any]]:
    learner = model.learner
    if hasattr(learner, "contributions"):
        return _summary_shap(learner, stays, top_k)
    return _hourly(model, stays, top_k)


def _summary_shap(learner, stays, top_k: int) -> list[dict[str, Any]]:
    contrib, F = learner.contributions(stays)
    names = learner.feature_names_
    variables = learner.summary_variables_  # recorded and derived variables, one block of statistics each
    stats = learner.stats_
    k = len(stats)
    score = [j for j, name in enumerate(names) if name.startswith("SAPS-I")]
    out = []
    for i in range(len(stays)):
        per_variable = {v: float(contrib[i, j * k:(j + 1) * k].sum()) for j, v in enumerate(variables)}
        if score:  # the severity score's components and total, as one entry
            per_variable["SAPS-I"] = float(contrib[i, score].sum())
        order = sorted(per_variable, key=lambda v: -abs(per_variable[v]))[:top_k]
        items = []
        for v in order:
            last = F[i, names.index("SAPS-I")] if v == "SAPS-I" else \
                F[i, variables.index(v) * k + stats.index("last")]
            items.append({"feature": v, "value": None if np.isnan(last) else float(last),
                          "contribution": per_variable[v]})
        top_features = np.argsort(-np.abs(contrib[i]))[:top_k]
        summary = ", ".join(f"{c['feature']} {c['contribution']:+.2f}" for c in items)
        out.append({"summary": summary, "explains": "log-odds (SHAP over summary features, summed per variable)",
                    "contributions": items,
                    "features": [{"feature": names[j], "contribution": float(contrib[i, j])} for j in top_features]})
    return out


def _hourly(model, stays, top_k: int) -> list[dict[str, Any]]:
    """Risk after each hour of data; the hours whose observations moved it most."""
    from medai.modalities.longitudinal.early_warning import trajectories

    hours, risk = trajectories(model, stays)
    out = []
    for i in range(len(stays)):
        r = risk[i]
        steps = np.diff(np.concatenate([[r[0]], r]))
        steps[np.isnan(steps)] = 0.0
        order = np.argsort(-np.abs(steps))[:top_k]
        items = [{"feature": f"hour {hours[j]:g}", "value": float(r[j]), "contribution": float(steps[j])}
                 for j in order]
        out.append({"summary": ", ".join(f"{c['feature']} {c['contribution']:+.3f}" for c in items),
                    "explains": "change in risk as each hour's observations arrived",
                    "contributions": items, "trajectory": {"hours": hours.tolist(),
                                                           "risk": [None if np.isnan(x) else float(x) for x in r]}})
    return out
