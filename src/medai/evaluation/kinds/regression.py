"""Regression targets: a predicted value; RMSE, MAE, R², Spearman's rho and calibration slope/intercept.

Calibration of a regression model: regress the observed values on the predictions, ``y = a + b * y_hat``;
a perfectly calibrated model has slope ``b = 1`` and intercept ``a = 0`` (slope < 1 means predictions too
extreme, the usual sign of overfitting).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

from medai.errors import MedAIError
from medai.evaluation import plots
from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.kinds.base import KindEvaluator

IDENTITY = {"rule": "value", "target": None, "threshold": None, "description": "the predicted value"}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    residual = y - pred
    total = float(np.sum((y - y.mean()) ** 2))
    out = {
        "rmse": float(np.sqrt(np.mean(residual**2))),
        "mae": float(np.mean(np.abs(residual))),
        "r2": 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan"),
        "spearman": float("nan"),
        "calibration_slope": float("nan"),
        "calibration_intercept": float("nan"),
    }
    if len(y) > 2 and np.ptp(pred) > 0 and np.ptp(y) > 0:
        out["spearman"] = float(spearmanr(y, pred).statistic)
        slope, intercept = np.polyfit(pred, y, 1)
        out["calibration_slope"], out["calibration_intercept"] = float(slope), float(intercept)
    return out


class RegressionEvaluator(KindEvaluator):
    kind = "regression"
    headline = "rmse"
    higher_is_better = False
    stratify = False
    cv_metric_names = ("rmse", "mae", "r2", "spearman")
    subgroup_header = (("mean_observed", "mean observed"), ("rmse", "RMSE (95% CI)"), ("mae", "MAE"), ("r2", "R²"))

    def outcome(self, y, target):
        return np.asarray(y, dtype=float)

    def scores(self, learner, X, target) -> np.ndarray:
        return np.asarray(learner.predict(X), dtype=float).reshape(-1)

    def decide(self, y_val, s_val, target, rule, task_options) -> dict[str, Any]:
        if rule not in (None, ""):
            raise MedAIError(f"--threshold {rule!r} applies to classification targets, not to regression")
        return dict(IDENTITY)

    def point_metrics(self, y, s, decision) -> dict[str, float]:
        return regression_metrics(y, s)

    def cv_fold_metrics(self, y, s) -> dict[str, float]:
        metrics = regression_metrics(y, s)
        return {name: metrics[name] for name in self.cv_metric_names}

    def subgroup_stats(self, y, s, decision, *, seed) -> tuple[dict[str, Any], str]:
        from medai.evaluation.subgroups import MIN_GROUP_SIZE

        m = regression_metrics(y, s)
        row = {"mean_observed": float(np.mean(y)), "rmse": m["rmse"], "rmse_ci_low": None, "rmse_ci_high": None,
               "mae": m["mae"], "r2": m["r2"]}
        if len(y) < MIN_GROUP_SIZE:
            return row, "too few records for a CI"
        ci = bootstrap_metrics(lambda i: {"rmse": regression_metrics(y[i], s[i])["rmse"]}, np.zeros(len(y)),
                               n_boot=200, seed=seed)["rmse"]
        row.update(rmse_ci_low=ci["ci_low"], rmse_ci_high=ci["ci_high"])
        return row, ""

    def plots(self, y, s, decision, target, test) -> dict[str, bytes]:
        return {"predicted_vs_observed": plots.predicted_vs_observed_png(y, s, test, target.column),
                "residuals": plots.residuals_png(y, s, target.column)}

    def balance(self, y, parts, target) -> dict[str, Any]:
        return {"prevalence": {name: round(float(np.mean(y[idx])), 6) for name, idx in parts.items() if len(idx)},
                "sd": {name: round(float(np.std(y[idx])), 6) for name, idx in parts.items() if len(idx)}}

    def describe_balance(self, balance) -> str:
        return "mean (sd) of the target: " + ", ".join(
            f"{name} {mean:.3g} ({balance['sd'][name]:.3g})" for name, mean in balance["prevalence"].items())

    def items(self, s, decision, target) -> list[dict[str, Any]]:
        return [{"value": float(v)} for v in np.asarray(s, dtype=float)]

    def columns(self, s, decision, target) -> dict[str, Any]:
        return {"prediction": np.asarray(s, dtype=float)}
