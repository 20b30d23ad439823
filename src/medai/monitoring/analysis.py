"""Drift and performance of a served model over sliding windows, and the alerts they raise.

**Data drift** (:func:`drift_windows`): the served batches of one model version, in order, are cut into windows of
``settings.window`` records every ``settings.stride`` records (sliding, half-overlapping by default). In each
window, every reference column is tested against the training reference - numeric feature or prediction summary:
two-sample KS on the reference's percentile bins; categorical: chi-squared - with its PSI (deciles of the
reference); and the representation (images, text, tables: the model's embedding) by an MMD permutation test
against the held-out reference sample. **Multiple testing:** all the p-values of one window (features, prediction
summaries, embedding) form one family, adjusted by Benjamini-Hochberg at ``settings.fdr``; a column is called
drifted when its adjusted p-value is below ``fdr`` *and* its PSI is at least ``settings.psi_min`` (a test on a
large window finds differences too small to matter); the embedding when its adjusted p-value is below ``fdr``.
Consecutive windows are separate looks: the false-alarm rate per window is what ``benchmarks/monitoring.py``
measures.

**Performance** (:func:`performance_windows`): predictions whose outcome arrived, in order of prediction, in
windows of ``settings.outcome_window``; each gets the kind's metrics with 95% bootstrap CIs (the same evaluator as
training) and the empirical coverage of the conformal sets or intervals (Wilson CI). The kind's headline metric
(AUROC, macro AUROC, ...), calibration (Brier score, ECE, where the kind has them) and any metric given a floor alert
when their CI lies wholly on the worse side of the CI validated on the test split at training (or past the floor);
coverage alerts when its CI lies wholly below the validated coverage CI (or the nominal level when none).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.monitoring import stats
from medai.monitoring.reference import dense, n_bins
from medai.monitoring.store import MonitorSettings

LOWER_IS_BETTER = {"brier", "ece", "mae", "rmse", "mse", "log_loss", "hamming_loss", "median_ae"}
PERMUTATIONS = 200
# alerted besides the kind's headline metric (discrimination) and any metric given a floor: calibration
ALERT_METRICS = ("brier", "ece")


# --------------------------------------------------------------------------------------------- drift


def _windows(sizes: list[int], window: int, stride: int, min_window: int) -> list[tuple[int, int]]:
    """Half-open ranges of batch positions making sliding windows of about ``window`` records, newest last."""
    total = int(np.sum(sizes))
    if total == 0:
        return []
    ends = np.cumsum(sizes)
    starts = ends - np.asarray(sizes)
    out = []
    # window ends every `stride` records counted back from the newest, so the last window always ends now
    end_marks = list(range(total, 0, -stride))[::-1]
    for mark in end_marks:
        j = int(np.searchsorted(ends, mark, side="left")) + 1  # batches up to the one holding record `mark`
        i = j - 1
        while i > 0 and ends[j - 1] - starts[i - 1] <= window:
            i -= 1
        if ends[j - 1] - starts[i] >= min(min_window, window):
            if not out or out[-1] != (i, j):
                out.append((i, j))
    return out


def drift_window(reference: dict[str, Any], batches: list, embeddings: np.ndarray | None,
                 settings: MonitorSettings, seed: int = 0) -> dict[str, Any]:
    """The tests of one window: ``batches`` are its stored batch rows, ``embeddings`` its projected
    representations (or ``None``)."""
    n = int(sum(b.n for b in batches))
    tests: list[dict[str, Any]] = []
    for group in ("features", "predictions"):
        for spec in reference.get(group) or []:
            size = n_bins(spec)
            counts = np.zeros(size)
            missing = 0
            for batch in batches:
                item = (batch.summary.get(group) or {}).get(spec["name"])
                if item:
                    counts += dense(item["c"], size)
                    missing += int(item.get("m", 0))
            if counts.sum() == 0:
                continue
            ref = np.asarray(spec["counts"], dtype=float)
            if spec["type"] == "numeric":
                statistic, p = stats.ks_binned(ref, counts)
                groups = stats.coarse_bins(ref)
                value = stats.psi(np.append(stats.regroup(ref, groups), spec["missing"]),
                                  np.append(stats.regroup(counts, groups), missing))
                test = "ks"
            else:
                statistic, p = stats.chi2_counts(np.append(ref, spec["missing"]), np.append(counts, missing))
                value = stats.psi(np.append(ref, spec["missing"]), np.append(counts, missing))
                test = "chi2"
            ref_missing = spec["missing"] / max(spec["n"], 1)
            tests.append({"group": group, "name": spec["name"], "test": test, "statistic": round(statistic, 6),
                          "p": p, "psi": round(value, 6), "n": int(counts.sum()),
                          "missing_rate": round(missing / max(counts.sum() + missing, 1), 6),
                          "reference_missing_rate": round(ref_missing, 6)})
    emb = reference.get("embedding")
    if emb is not None and embeddings is not None and len(embeddings) >= 10:
        sample = np.asarray(emb["sample"], dtype=float)
        statistic, p = stats.mmd_test(sample, embeddings[-len(sample):], emb["bandwidth"], permutations=PERMUTATIONS,
                                      seed=seed)
        tests.append({"group": "embedding", "name": "representation", "test": "mmd", "statistic": round(statistic, 6),
                      "p": p, "psi": None, "n": int(min(len(embeddings), len(sample)))})
    adjusted = stats.benjamini_hochberg([t["p"] for t in tests])
    for test, q in zip(tests, adjusted, strict=True):
        test["p"] = _round(test["p"])
        test["p_adjusted"] = _round(q)
        significant = bool(np.isfinite(q) and q < settings.fdr)
        test["drift"] = significant and (test["psi"] is None or test["psi"] >= settings.psi_min)
    drifted = [t for t in tests if t["drift"]]
    psis = [t["psi"] for t in tests if t["group"] == "features" and t["psi"] is not None]
    return {"n": n, "start": batches[0].ts.isoformat(), "end": batches[-1].ts.isoformat(),
            "first_batch": int(batches[0].id), "last_batch": int(batches[-1].id), "tests": tests,
            "drifted": [f"{t['group']}:{t['name']}" for t in drifted],
            "max_feature_psi": max(psis) if psis else None,
            "prediction_psi": next((t["psi"] for t in tests if t["group"] == "predictions"), None),
            "embedding_p": next((t["p"] for t in tests if t["group"] == "embedding"), None)}


def _round(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(f"{value:.6g}")


def drift_windows(reference: dict[str, Any] | None, batches: list, predictions: list,
                  settings: MonitorSettings) -> list[dict[str, Any]]:
    """Every sliding window over ``batches`` (the last ``settings.history`` of them), tested."""
    if not reference or not batches:
        return []
    spans = _windows([b.n for b in batches], settings.window, settings.stride, settings.min_window)
    spans = spans[-settings.history:]
    embedded = [(p.ts, p.embedding) for p in predictions if p.embedding is not None]
    out = []
    for k, (i, j) in enumerate(spans):
        chosen = batches[i:j]
        Z = None
        if embedded:
            lo, hi = chosen[0].ts, chosen[-1].ts
            rows = [e for ts, e in embedded if lo <= ts <= hi]
            Z = np.asarray(rows, dtype=float) if rows else None
        out.append(drift_window(reference, chosen, Z, settings, seed=k))
    return out


# --------------------------------------------------------------------------------------- performance


def performance_windows(model, predictions: list, settings: MonitorSettings, n_boot: int = 200
                        ) -> list[dict[str, Any]]:
    """Metrics with CIs over sliding windows of predictions that have an outcome (oldest first)."""
    labelled = [p for p in predictions if p.outcome_at is not None]
    size, stride = settings.outcome_window, settings.outcome_stride
    total = len(labelled)
    if total < settings.min_outcomes:
        return []
    ends = list(range(total, 0, -stride))[::-1]
    ends = [e for e in ends if e >= min(size, total) or e == total]
    out = []
    for end in ends[-settings.history:]:
        rows = labelled[max(0, end - size):end]
        if len(rows) < settings.min_outcomes:
            continue
        result = evaluate_rows(model, rows, n_boot=n_boot)
        if result is not None:
            out.append(result)
    return out


def evaluate_rows(model, rows: list, n_boot: int = 200) -> dict[str, Any] | None:
    from medai.errors import MedAIError

    target, evaluator = model.target, model.evaluator
    try:
        encoded = target.encode(np.asarray([r.outcome for r in rows], dtype=object), "the outcomes")
        y = evaluator.outcome(encoded, target)
    except MedAIError:
        return None
    s = np.asarray([r.score for r in rows], dtype=float)
    if evaluator.stratify and len(np.unique(y[np.isfinite(y)] if y.dtype.kind == "f" else y)) < 2:
        metrics = {}
    else:
        metrics = evaluator.evaluate(y, s, model.decision, n_boot=n_boot, seed=0)
    window: dict[str, Any] = {"n": len(rows), "start": rows[0].ts.isoformat(), "end": rows[-1].ts.isoformat(),
                              "last_prediction": int(rows[-1].id), "metrics": metrics}
    covered = [_covered(r.answer, r.outcome, target) for r in rows]
    covered = [c for c in covered if c is not None]
    if covered and model.conformal is not None:
        low, high = stats.proportion_ci(int(sum(covered)), len(covered))
        window["coverage"] = {"value": round(float(np.mean(covered)), 6), "ci_low": _round(low),
                              "ci_high": _round(high), "n": len(covered), "nominal": model.conformal.coverage}
    return window


def _covered(answer, outcome, target) -> bool | None:
    if answer is None:
        return None
    if target.kind == "regression":
        try:
            value = float(outcome)
        except (TypeError, ValueError):
            return None
        return bool(answer[0] <= value <= answer[1])
    if target.kind in ("binary", "multiclass"):
        return str(outcome) in {str(a) for a in answer} or _label(outcome) in {str(a) for a in answer}
    return None


def _label(value) -> str:
    try:
        number = float(value)
        return str(int(number)) if number.is_integer() else str(value)
    except (TypeError, ValueError):
        return str(value)


# -------------------------------------------------------------------------------------------- alerts


def validated(model) -> dict[str, Any]:
    """What the model achieved on its test split at training: metrics with CIs and conformal coverage."""
    metrics = model.meta.get("metrics", {})
    return {"test": metrics.get("test", {}), "conformal": metrics.get("conformal", {})}


def drift_alerts(name: str, version: int, window: dict[str, Any]) -> list[dict[str, Any]]:
    alerts = []
    for test in window["tests"]:
        if not test["drift"]:
            continue
        what = {"features": "feature", "predictions": "prediction summary", "embedding": "representation"}[
            test["group"]]
        psi_text = f", PSI {test['psi']:.3f}" if test["psi"] is not None else ""
        alerts.append({"model": name, "version": version, "category": "drift",
                       "subject": f"{test['group']}:{test['name']}", "window_end": window["last_batch"],
                       "value": test["psi"] if test["psi"] is not None else test["statistic"],
                       "message": f"{what} {test['name']!r} drifted from the training reference "
                                  f"({test['test'].upper()} adjusted p={test['p_adjusted']:.2g}{psi_text}; "
                                  f"{test['n']} records)",
                       "detail": {k: test[k] for k in ("test", "statistic", "p", "p_adjusted", "psi", "n")}})
    return alerts


def performance_alerts(name: str, version: int, model, window: dict[str, Any], settings: MonitorSettings
                       ) -> list[dict[str, Any]]:
    alerts = []
    reference = validated(model)
    watched = {model.evaluator.headline, *ALERT_METRICS, *settings.floors}
    for metric, got in window["metrics"].items():
        if metric not in watched or not isinstance(got, dict) or got.get("ci_low") is None:
            continue
        lower_better = metric in LOWER_IS_BETTER
        ref = reference["test"].get(metric) or {}
        reasons = []
        if ref.get("ci_low") is not None and ref.get("ci_high") is not None:
            worse = got["ci_low"] > ref["ci_high"] if lower_better else got["ci_high"] < ref["ci_low"]
            if worse:
                reasons.append(f"its 95% CI [{got['ci_low']:.3f}, {got['ci_high']:.3f}] lies outside the validated "
                               f"[{ref['ci_low']:.3f}, {ref['ci_high']:.3f}]")
        floor = settings.floors.get(metric)
        past = floor is not None and (got["ci_low"] > floor if lower_better else got["ci_high"] < floor)
        if past:
            reasons.append(f"its 95% CI [{got['ci_low']:.3f}, {got['ci_high']:.3f}] is past the floor {floor}")
        if reasons:
            alerts.append(_performance_alert(name, version, window, metric, got, "; ".join(reasons)))
    coverage = window.get("coverage")
    if coverage and coverage.get("ci_high") is not None:
        ref = (reference["conformal"].get("coverage") or {}) if isinstance(reference["conformal"], dict) else {}
        bound = ref.get("ci_low") if ref.get("ci_low") is not None else coverage["nominal"]
        if coverage["ci_high"] < bound:
            alerts.append(_performance_alert(
                name, version, window, "coverage", coverage,
                f"its 95% CI [{coverage['ci_low']:.3f}, {coverage['ci_high']:.3f}] lies below the validated "
                f"{bound:.3f} (nominal {coverage['nominal']:.2f})"))
    return alerts


def _performance_alert(name, version, window, metric, got, reason) -> dict[str, Any]:
    return {"model": name, "version": version, "category": "performance", "subject": metric,
            "window_end": window["last_prediction"], "value": got.get("value"),
            "message": f"{metric} {got.get('value')} on the last {window['n']} outcomes: {reason}",
            "detail": {"value": got.get("value"), "ci_low": got.get("ci_low"), "ci_high": got.get("ci_high"),
                       "n": window["n"]}}


# -------------------------------------------------------------------------------------------- report


def analyse(store, name: str, version: int, model, *, settings: MonitorSettings | None = None,
            latest_only: bool = False) -> dict[str, Any]:
    """The monitoring report of one model version; new alerts are stored (and returned under ``new_alerts``)."""
    settings = settings or store.settings(name)
    reference = model.monitoring
    limit = settings.window * (1 if latest_only else settings.history + 1)
    batches = store.batches(name, version, limit=max(limit, 1))
    embedded = (store.predictions(name, version, embedded=True, limit=max(limit, 1))
                if reference and reference.get("embedding") else [])
    drift = drift_windows(reference, batches, embedded, settings)
    if latest_only:
        drift = drift[-1:]
    labelled = store.predictions(name, version, labelled=True,
                                 limit=settings.outcome_window * (1 if latest_only else settings.history + 1))
    performance = performance_windows(model, labelled, settings)
    if latest_only:
        performance = performance[-1:]
    alerts = []
    for window in drift:
        alerts += drift_alerts(name, version, window)
    for window in performance:
        alerts += performance_alerts(name, version, model, window, settings)
    new = store.add_alerts(alerts)
    return finite({"model": name, "version": version, "kind": model.kind, "settings": settings.to_json(),
            "reference": _reference_summary(reference), "counts": store.counts(name, version),
            "validated": validated(model), "drift": drift, "performance": performance,
            "status": _status(drift, performance, alerts), "new_alerts": new,
            "alerts": store.alerts(name, version)})


def finite(value: Any) -> Any:
    """A JSON-able copy: numpy scalars to Python, NaN and infinities to ``None`` (JSON has neither)."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _reference_summary(reference: dict[str, Any] | None) -> dict[str, Any] | None:
    if not reference:
        return None
    return {"features": [f["name"] for f in reference.get("features", [])],
            "predictions": [p["name"] for p in reference.get("predictions", [])],
            "embedding": None if reference.get("embedding") is None else {
                "dims": reference["embedding"]["dims"], "sample": len(reference["embedding"]["sample"])},
            "n_heldout": reference.get("n_heldout")}


def _status(drift, performance, alerts) -> dict[str, Any]:
    last_drift = drift[-1] if drift else None
    last_perf = performance[-1] if performance else None
    current = [a for a in alerts if (last_drift and a["category"] == "drift"
                                     and a["window_end"] == last_drift["last_batch"])
               or (last_perf and a["category"] == "performance" and a["window_end"] == last_perf["last_prediction"])]
    return {"drift": bool(last_drift and last_drift["drifted"]),
            "drifted": last_drift["drifted"] if last_drift else [],
            "performance_alert": any(a["category"] == "performance" for a in current),
            "current_alerts": [a["message"] for a in current]}
