"""Early-warning evaluation: how well a model warns as a stay unfolds.

- discrimination by **hours of data seen** (AUROC and AUPRC of the risk at 6, 12, 24, 36 and 48 hours);
- **risk trajectories**: every stay scored hour by hour from the data seen so far (what ``medai stream replay``
  writes, and what the service's streams return);
- **alerts**: one each time the risk crosses the model's threshold upwards; alert sensitivity (outcome stays
  with at least one alert), positive predictive value (alerted stays that had the outcome), alerts per
  patient-day, and the median lead time from the first alert to the outcome when its time is known;
- the PhysioNet 2012 challenge's **Event 1 score**: min(sensitivity, positive predictivity) at the threshold
  fixed on validation data.

Every figure has a 95% percentile-bootstrap CI over stays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.metrics import auprc, auroc

HOURS = (6, 12, 24, 36, 48)


def event1(y: np.ndarray, s: np.ndarray, threshold: float) -> float:
    predicted = np.asarray(s) >= threshold
    y = np.asarray(y).astype(bool)
    tp = float((predicted & y).sum())
    se = tp / y.sum() if y.sum() else np.nan
    ppv = tp / predicted.sum() if predicted.sum() else 0.0
    return float(min(se, ppv))


def event1_score(y, s, threshold: float, *, n_boot: int = 1000, seed: int = 0) -> dict[str, float | None]:
    y, s = np.asarray(y).astype(int), np.asarray(s, dtype=float)
    return bootstrap_metrics(lambda i: {"event1": event1(y[i], s[i], threshold)}, y, n_boot=n_boot,
                             seed=seed)["event1"]


def scores_at(model, stays, hours: float) -> np.ndarray:
    return model.scores(stays.until(hours))


def by_hours(model, stays, y, hours=HOURS, *, n_boot: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """AUROC/AUPRC (95% CI) of the risk from the first ``h`` hours of every stay, for each ``h``."""
    y = np.asarray(y).astype(int)
    rows = []
    for h in hours:
        s = scores_at(model, stays, h)
        if len(np.unique(y)) < 2:
            continue
        ci = bootstrap_metrics(lambda i, s=s: {"auroc": auroc(y[i], s[i]), "auprc": auprc(y[i], s[i])}, y,
                               n_boot=n_boot, seed=seed)
        rows.append({"hours": float(h), "auroc": ci["auroc"], "auprc": ci["auprc"]})
    return rows


def trajectories(model, stays, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Risk of every stay at ``step``, ``2*step``, ... hours until its horizon (the last scoring of a stay uses
    all its data): ``(hours, (n, H))``, NaN once a stay has ended."""
    end = float(np.max(stays.horizon)) if len(stays) else 0.0
    hours = np.arange(1, int(np.ceil(end / step - 1e-9)) + 1, dtype=np.float64) * step
    if len(hours) == 0:
        hours = np.array([step])
    risk = np.full((len(stays), len(hours)), np.nan)
    for j, h in enumerate(hours):
        live = (stays.horizon > h - step) | ((j == 0) & (stays.horizon <= 0))
        if live.any():
            risk[live, j] = scores_at(model, stays.take(np.flatnonzero(live)), h)
    return hours, risk


def alert_hours(hours: np.ndarray, risk: np.ndarray, threshold: float) -> list[list[float]]:
    """The hours at which each stay's risk crosses ``threshold`` upwards (the first hour counts when above)."""
    above = np.nan_to_num(risk, nan=-np.inf) >= threshold
    previous = np.concatenate([np.zeros((len(risk), 1), dtype=bool), above[:, :-1]], axis=1)
    crossing = above & ~previous
    return [hours[row].tolist() for row in crossing]


def alert_summary(hours, risk, threshold, y, event_hours=None, *, n_boot: int = 500, seed: int = 0
                  ) -> dict[str, Any]:
    """Alert sensitivity, PPV, alerts per patient-day and median lead time (hours), with 95% CIs."""
    y = np.asarray(y).astype(int)
    alerts = alert_hours(hours, risk, threshold)
    n_alerts = np.array([len(a) for a in alerts], dtype=float)
    first = np.array([a[0] if a else np.nan for a in alerts])
    observed = np.array([hours[np.isfinite(r)].max() if np.isfinite(r).any() else 0.0 for r in risk])
    lead = np.full(len(y), np.nan)
    if event_hours is not None:
        lead = np.asarray(event_hours, dtype=float) - first
        lead = np.where((y == 1) & np.isfinite(lead), lead, np.nan)

    def compute(i):
        alerted = n_alerts[i] > 0
        positives = y[i] == 1
        days = observed[i].sum() / 24.0
        leads = lead[i][np.isfinite(lead[i])]
        return {"sensitivity": alerted[positives].mean() if positives.any() else np.nan,
                "ppv": positives[alerted].mean() if alerted.any() else np.nan,
                "alerts_per_patient_day": n_alerts[i].sum() / days if days else np.nan,
                "median_lead_time_hours": float(np.median(leads)) if len(leads) else np.nan}

    summary = bootstrap_metrics(compute, y, n_boot=n_boot, seed=seed)
    return {"threshold": float(threshold), **summary, "alerts": int(n_alerts.sum()),
            "stays_alerted": int((n_alerts > 0).sum()), "stays": int(len(y)),
            "lead_time_known": bool(event_hours is not None)}


def table(rows: list[dict[str, Any]], alerts: dict[str, Any] | None) -> dict[str, Any]:
    """The report's table of discrimination by hours of data seen (and the alert figures below it)."""

    def ci(entry):
        if entry["value"] is None:
            return "-"
        return f"{entry['value']:.3f} ({entry['ci_low']:.3f}-{entry['ci_high']:.3f})"

    note = "Each stay scored from the data of its first h hours only (95% bootstrap CI)."
    if alerts:
        lead = alerts["median_lead_time_hours"]
        note += (f" Alerts at threshold {alerts['threshold']:.3f}, one per upward crossing, stays replayed hour by "
                 f"hour: sensitivity {ci(alerts['sensitivity'])}, PPV {ci(alerts['ppv'])}, "
                 f"{ci(alerts['alerts_per_patient_day'])} alerts per patient-day"
                 + (f", median lead time {ci(lead)} h before the outcome" if lead["value"] is not None else "")
                 + ".")
    return {"title": "Early warning: discrimination by hours of data seen", "note": note,
            "header": ["hours seen", "AUROC (95% CI)", "AUPRC (95% CI)"],
            "rows": [[f"{r['hours']:g}", ci(r["auroc"]), ci(r["auprc"])] for r in rows]}
