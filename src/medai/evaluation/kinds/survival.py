"""Survival (time-to-event) targets: risk scores and survival curves, judged as clinicians and trialists do.

``y`` is ``(n, 2)``: follow-up time and event (1 = happened, 0 = censored). A survival learner answers
``predict(X)`` (a risk score, higher = the event sooner) and ``predict_curves(X, times)`` (survival
probabilities). *Scores* are ``(n, 1 + G)``: the risk score, then the survival curve on the target's time grid
(``target.fields["grid"]``, which holds the named horizons).

Metrics (95% bootstrap CIs, resamples keep the event rate): Harrell's C-index, Uno's C-index (IPCW, truncated
at the 80th percentile of the test follow-up), the integrated Brier score (between the 10th and 80th
percentiles of the test follow-up), and at each horizon the time-dependent (cumulative/dynamic) AUC and the
Brier score. The censoring distribution of the IPCW metrics is estimated on the evaluated records. The report
adds calibration at each horizon (mean predicted survival vs Kaplan-Meier observed, by risk decile) and
Kaplan-Meier curves of the predicted risk tertiles with the log-rank test.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from medai.errors import MedAIError
from medai.evaluation import plots
from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.evaluate import summarize_cv
from medai.evaluation.kinds.base import KindEvaluator
from medai.tasks.kinds import TargetSpec

MAX_BOOT = 200  # resamples of the IPCW metrics (each costs tens of ms)


def _structured(y):
    from sksurv.util import Surv

    y = np.asarray(y, dtype=float)
    return Surv.from_arrays(event=y[:, 1].astype(bool), time=y[:, 0])


def _quiet(compute, *args) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(compute(*args))
    except (ValueError, ZeroDivisionError, IndexError):
        return float("nan")


def harrell(y, risk) -> float:
    """Harrell's C-index, as scikit-survival's ``concordance_index_censored`` (equal to it; vectorised, since
    the bootstrap calls it hundreds of times): pairs whose earlier time is an event (or an event tied with a
    censored time) are comparable; tied risk scores count one half."""
    y = np.asarray(y, dtype=float)
    time, event, risk = y[:, 0], y[:, 1].astype(bool), np.asarray(risk, dtype=float)
    concordant = comparable = 0.0
    for start in range(0, len(time), 512):  # rows in blocks: memory stays O(512 n)
        rows = slice(start, start + 512)
        t_i, e_i, r_i = time[rows, None], event[rows, None], risk[rows, None]
        pairs = e_i & ((t_i < time[None, :]) | ((t_i == time[None, :]) & ~event[None, :]))
        comparable += pairs.sum()
        concordant += (pairs & (r_i > risk[None, :])).sum() + 0.5 * (pairs & (r_i == risk[None, :])).sum()
    return float(concordant / comparable) if comparable else float("nan")


def uno(y, risk, tau: float) -> float:
    from sksurv.metrics import concordance_index_ipcw

    return _quiet(lambda: concordance_index_ipcw(_structured(y), _structured(y), np.asarray(risk, float), tau)[0])


def integrated_brier(y, curves, times) -> float:
    from sksurv.metrics import integrated_brier_score

    return _quiet(lambda: integrated_brier_score(_structured(y), _structured(y), curves, times))


def auc_at(y, risk, horizon: float) -> float:
    from sksurv.metrics import cumulative_dynamic_auc

    return _quiet(lambda: cumulative_dynamic_auc(_structured(y), _structured(y), risk, [horizon])[0][0])


def brier_at(y, survival, horizon: float) -> float:
    from sksurv.metrics import brier_score

    return _quiet(lambda: brier_score(_structured(y), _structured(y), survival[:, None], [horizon])[1][0])


def kaplan_meier(y, times) -> np.ndarray:
    """Kaplan-Meier survival of ``y`` at ``times`` (the step function carried past the last time)."""
    from sksurv.nonparametric import kaplan_meier_estimator

    y = np.asarray(y, dtype=float)
    t, s = kaplan_meier_estimator(y[:, 1].astype(bool), y[:, 0])
    positions = np.searchsorted(t, np.asarray(times, float), side="right") - 1
    return np.where(positions < 0, 1.0, s[np.clip(positions, 0, None)])


def horizon_key(horizon: float) -> str:
    return f"{horizon:g}"


class SurvivalEvaluator(KindEvaluator):
    kind = "survival"
    headline = "c_index"
    stratify = True  # by the event indicator
    supports_conformal = False
    cv_metric_names = ("c_index", "c_index_uno", "integrated_brier")
    subgroup_header = (("events", "events"), ("c_index", "C-index (95% CI)"))

    def outcome(self, y, target: TargetSpec) -> np.ndarray:
        return np.asarray(y, dtype=float)

    def strata(self, y) -> np.ndarray:
        return np.asarray(y, dtype=float)[:, 1].astype(int)

    def scores(self, learner, X, target: TargetSpec) -> np.ndarray:
        grid = np.asarray(target.fields["grid"], dtype=float)
        return np.column_stack([np.asarray(learner.predict(X), dtype=float), learner.predict_curves(X, grid)])

    def decide(self, y_val, s_val, target, rule, task_options) -> dict[str, Any]:
        if rule not in (None, ""):
            raise MedAIError(f"--threshold {rule!r} does not apply to a survival model: it predicts a risk score and "
                             "a survival curve")
        return {"rule": "survival", "target": None, "threshold": None, "grid": list(target.fields["grid"]),
                "horizons": list(target.fields["horizons"]), "time_unit": target.fields.get("time_unit", ""),
                "description": "risk score and survival curve per patient; no threshold"}

    # -- measuring -----------------------------------------------------------------------------------------
    @staticmethod
    def _windows(y, decision) -> tuple[float, np.ndarray, list[float]]:
        """Uno's truncation time, the integration times of the Brier score, the horizons within follow-up."""
        time = np.asarray(y, float)[:, 0]
        grid = np.asarray(decision["grid"], float)
        low, high = np.quantile(time, [0.1, 0.8])
        times = grid[(grid >= low) & (grid <= high)]
        horizons = [h for h in decision["horizons"] if h < time.max()]
        return float(high), times, horizons

    def _metrics(self, y, s, decision, tau, times, horizons) -> dict[str, float]:
        grid = list(decision["grid"])
        risk, curves = s[:, 0], s[:, 1:]
        out = {"c_index": harrell(y, risk), "c_index_uno": uno(y, risk, tau),
               "integrated_brier": integrated_brier(y, curves[:, [grid.index(t) for t in times]], times)
               if len(times) >= 2 else float("nan")}
        for h in horizons:
            survival = curves[:, grid.index(h)]
            out[f"auc_at_{horizon_key(h)}"] = auc_at(y, 1 - survival, h)
            out[f"brier_at_{horizon_key(h)}"] = brier_at(y, survival, h)
        return out

    def point_metrics(self, y, s, decision) -> dict[str, float]:
        return self._metrics(np.asarray(y, float), np.asarray(s, float), decision, *self._windows(y, decision))

    def evaluate(self, y, s, decision, *, n_boot=1000, seed=0) -> dict[str, dict]:
        y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
        if y[:, 1].sum() == 0:
            raise MedAIError("the evaluated records have no events: a survival model cannot be judged on them")
        windows = self._windows(y, decision)
        return bootstrap_metrics(lambda i: self._metrics(y[i], s[i], decision, *windows), self.strata(y),
                                 n_boot=min(n_boot, MAX_BOOT), seed=seed)

    def cv_fold_metrics(self, y, s) -> dict[str, float]:
        y, s = np.asarray(y, float), np.asarray(s, float)
        tau = float(np.quantile(y[:, 0], 0.8))
        return {"c_index": harrell(y, s[:, 0]), "c_index_uno": uno(y, s[:, 0], tau)}

    def summarize_cv(self, folds, n_folds) -> dict[str, dict]:
        return summarize_cv(folds, n_folds)

    def extra_results(self, y, s, decision, y_val, s_val, target, rule, *, n_boot, seed) -> dict[str, Any]:
        y, s = np.asarray(y, float), np.asarray(s, float)
        grid = list(decision["grid"])
        unit = decision.get("time_unit", "")
        calibration, rows = {}, []
        for h in decision["horizons"]:
            if h >= y[:, 0].max():
                continue
            table = calibration_by_decile(y, s[:, 1 + grid.index(h)], s[:, 0], h)
            calibration[horizon_key(h)] = table
            rows += [[f"{h:g} {unit}", r["group"], r["n"], r["predicted"], r["observed"]] for r in table]
        groups = logrank_by_risk(y, s[:, 0])
        tables = [{"title": "Calibration at each horizon: mean predicted survival vs Kaplan-Meier observed, by "
                            "predicted-risk group (test)",
                   "note": "Groups are deciles of the risk score (fewer when the test set is small).",
                   "header": ["horizon", "risk group", "n", "predicted survival", "observed (Kaplan-Meier)"],
                   "rows": rows},
                  {"title": "Kaplan-Meier by predicted-risk tertile (test), log-rank test",
                   "note": f"chi2 = {groups['chi2']:.2f}, p = {groups['p']:.3g}" if groups else "too few records",
                   "header": ["tertile", "n", "events", "median survival"],
                   "rows": [[g["group"], g["n"], g["events"], g["median"]] for g in (groups or {}).get("groups", [])]}]
        return {"metrics": {"calibration": calibration, "risk_groups_logrank": groups}, "tables": tables}

    def subgroup_stats(self, y, s, decision, *, seed) -> tuple[dict[str, Any], str]:
        from medai.evaluation.subgroups import MIN_GROUP_SIZE

        y, s = np.asarray(y, float), np.asarray(s, float)
        row = {"events": int(y[:, 1].sum()), "c_index": None, "c_index_ci_low": None, "c_index_ci_high": None}
        if len(y) < MIN_GROUP_SIZE or y[:, 1].sum() < 2:
            return row, "too few records or events: no C-index"
        ci = bootstrap_metrics(lambda i: {"c": harrell(y[i], s[i, 0])}, self.strata(y), n_boot=200, seed=seed)["c"]
        row.update(c_index=ci["value"], c_index_ci_low=ci["ci_low"], c_index_ci_high=ci["ci_high"])
        return row, ""

    def plots(self, y, s, decision, target, test) -> dict[str, bytes]:
        y, s = np.asarray(y, float), np.asarray(s, float)
        out = {"km_by_risk_tertile": km_png(y, s[:, 0], decision.get("time_unit", ""))}
        grid = list(decision["grid"])
        horizons = [h for h in decision["horizons"] if h < y[:, 0].max()]
        if horizons:
            h = horizons[len(horizons) // 2]
            table = calibration_by_decile(y, s[:, 1 + grid.index(h)], s[:, 0], h)
            out["calibration_at_horizon"] = calibration_png(table, h, decision.get("time_unit", ""))
        return out

    def balance(self, y, parts, target) -> dict[str, Any]:
        y = np.asarray(y, float)
        return {"prevalence": {name: round(float(y[idx, 1].mean()), 6) for name, idx in parts.items() if len(idx)},
                "median_follow_up": {name: round(float(np.median(y[idx, 0])), 6) for name, idx in parts.items()
                                     if len(idx)}}

    def describe_balance(self, balance) -> str:
        return "event rate: " + super().describe_balance(balance)

    # -- one prediction ------------------------------------------------------------------------------------
    def items(self, s, decision, target) -> list[dict[str, Any]]:
        s = np.asarray(s, dtype=float)
        grid = np.asarray(decision["grid"], float)
        index = {h: int(np.flatnonzero(np.isclose(grid, h))[0]) for h in decision["horizons"]}
        out = []
        for row in s:
            curve = row[1:]
            median = median_survival(grid, curve)
            unit = decision.get("time_unit", "")
            last = decision["horizons"][-1]
            out.append({
                "prediction_text": (f"median survival {median:g} {unit}" if median is not None else
                                    "median survival not reached") + f"; risk by {last:g} {unit}: "
                                   f"{1 - curve[index[last]]:.2f}",
                "risk_score": float(row[0]),
                "median_survival": median,
                "survival_at": {horizon_key(h): round(float(curve[k]), 6) for h, k in index.items()},
                "risk_at": {horizon_key(h): round(float(1 - curve[k]), 6) for h, k in index.items()},
                "survival_curve": {"times": [round(float(t), 6) for t in grid],
                                   "survival": [round(float(v), 6) for v in curve]},
                "time_unit": decision.get("time_unit", ""),
            })
        return out

    def columns(self, s, decision, target) -> dict[str, Any]:
        s = np.asarray(s, dtype=float)
        grid = np.asarray(decision["grid"], float)
        out: dict[str, Any] = {"risk_score": s[:, 0],
                               "median_survival": [median_survival(grid, row[1:]) for row in s]}
        for h in decision["horizons"]:
            k = int(np.flatnonzero(np.isclose(grid, h))[0])
            out[f"survival_at_{horizon_key(h)}"] = np.round(s[:, 1 + k], 6)
            out[f"risk_at_{horizon_key(h)}"] = np.round(1 - s[:, 1 + k], 6)
        return out


def median_survival(grid: np.ndarray, curve: np.ndarray) -> float | None:
    """The first time the curve reaches 0.5; ``None`` when it stays above within the follow-up (not reached)."""
    below = np.flatnonzero(np.asarray(curve) <= 0.5)
    return float(grid[below[0]]) if below.size else None


def _groups(risk: np.ndarray, k: int) -> np.ndarray:
    edges = np.quantile(risk, np.linspace(0, 1, k + 1)[1:-1])
    return np.searchsorted(edges, risk, side="right")


def calibration_by_decile(y, survival_h, risk, horizon: float) -> list[dict[str, Any]]:
    k = int(max(2, min(10, len(y) // 20)))
    groups = _groups(risk, k)
    rows = []
    for g in range(k):
        mask = groups == g
        if mask.sum() < 2:
            continue
        rows.append({"group": g + 1, "n": int(mask.sum()), "predicted": round(float(survival_h[mask].mean()), 6),
                     "observed": round(float(kaplan_meier(y[mask], [horizon])[0]), 6)})
    return rows


def logrank_by_risk(y, risk) -> dict[str, Any] | None:
    from sksurv.compare import compare_survival

    groups = _groups(risk, 3)
    if len(np.unique(groups)) < 2:
        return None
    try:
        chi2, p = compare_survival(_structured(y), groups)
    except ValueError:
        return None
    names = ["low", "middle", "high"]
    out = []
    for g in np.unique(groups):
        mask = groups == g
        times = np.unique(y[mask, 0])
        surv = kaplan_meier(y[mask], times)
        below = np.flatnonzero(surv <= 0.5)
        out.append({"group": names[int(g)], "n": int(mask.sum()), "events": int(y[mask, 1].sum()),
                    "median": float(times[below[0]]) if below.size else None})
    return {"chi2": round(float(chi2), 6), "p": float(p), "groups": out}


def km_png(y, risk, unit: str) -> bytes:
    from sksurv.nonparametric import kaplan_meier_estimator

    fig, ax = plots._figure()
    groups = _groups(risk, 3)
    for g, name in enumerate(("low risk", "middle risk", "high risk")):
        mask = groups == g
        if mask.any():
            t, s = kaplan_meier_estimator(y[mask, 1].astype(bool), y[mask, 0])
            ax.step(np.concatenate([[0], t]), np.concatenate([[1], s]), where="post", label=f"{name} (n={mask.sum()})")
    result = logrank_by_risk(y, risk)
    ax.set_title("Kaplan-Meier by predicted risk" + (f" (log-rank p={result['p']:.2g})" if result else ""))
    ax.set_xlabel(f"time ({unit})" if unit else "time")
    ax.set_ylabel("survival")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    return plots.png_bytes(fig)


def calibration_png(table: list[dict[str, Any]], horizon: float, unit: str) -> bytes:
    fig, ax = plots._figure()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.plot([r["predicted"] for r in table], [r["observed"] for r in table], marker="o")
    ax.set_xlabel(f"predicted survival at {horizon:g} {unit}".strip())
    ax.set_ylabel("observed (Kaplan-Meier)")
    ax.set_title("Calibration by risk decile")
    return plots.png_bytes(fig)
