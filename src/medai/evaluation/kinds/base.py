"""What every kind of target supplies to the road: scores from a learner, a decision rule chosen on validation
data, metrics with CIs, a CV summary, subgroup rows, plots, the balance of each split, and the way one
prediction is reported (JSON item and CSV columns).

*Scores* are the kind's raw model output: the positive-class probability (binary, shape ``(n,)``), class
probabilities (multiclass ``(n, k)``), label probabilities (multilabel ``(n, L)``) or the predicted value
(regression ``(n,)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.evaluate import summarize_cv
from medai.tasks.kinds import TargetSpec


class KindEvaluator:
    kind: str = ""
    headline: str = ""  # the metric that names a model's quality (listing, subgroups, auto selection)
    higher_is_better: bool = True
    stratify: bool = True  # splits and bootstrap keep the class balance
    supports_conformal: bool = True  # whether conformal sets/intervals apply to this kind's scores
    cv_metric_names: tuple[str, ...] = ()
    subgroup_header: tuple[tuple[str, str], ...] = ()  # (row key, column title) after column, group, n

    # -- from a learner ----------------------------------------------------------------------------------
    def scores(self, learner, X, target: TargetSpec) -> np.ndarray:
        return np.asarray(learner.predict_proba(X), dtype=float)

    # -- deciding ----------------------------------------------------------------------------------------
    def decide(self, y_val, s_val, target: TargetSpec, rule: str | None, task_options: dict) -> dict[str, Any]:
        raise NotImplementedError

    # -- measuring ---------------------------------------------------------------------------------------
    def point_metrics(self, y, s, decision: dict) -> dict[str, float]:
        raise NotImplementedError

    def strata(self, y) -> np.ndarray:
        return np.asarray(y) if self.stratify else np.zeros(len(y))

    def evaluate(self, y, s, decision: dict, *, n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
        y, s = np.asarray(y), np.asarray(s, dtype=float)
        return bootstrap_metrics(lambda i: self.point_metrics(y[i], s[i], decision), self.strata(y),
                                 n_boot=n_boot, seed=seed)

    def cv_fold_metrics(self, y, s) -> dict[str, float]:
        """Decision-free metrics of one CV fold."""
        raise NotImplementedError

    def summarize_cv(self, folds: list[dict[str, float]], n_folds: int) -> dict[str, dict]:
        return summarize_cv(folds, n_folds)

    def extra_results(self, y, s, decision, y_val, s_val, target, rule, *, n_boot, seed) -> dict[str, Any]:
        """Kind-specific results beside the test metrics (metrics.json keys) and tables for the report."""
        return {"metrics": {}, "tables": []}

    def details(self, y, s, decision: dict, target: TargetSpec, *, n_boot: int = 1000, seed: int = 0) -> dict:
        """Kind-specific results added beside ``test`` when a model is evaluated on new data (e.g. per type)."""
        return {}

    def confusion(self, y, s, decision: dict, target: TargetSpec) -> dict | None:
        return None

    def subgroup_stats(self, y, s, decision: dict, *, seed: int) -> tuple[dict[str, Any], str]:
        """One subgroup's row values (keys of ``subgroup_header``) and a note."""
        raise NotImplementedError

    def plots(self, y, s, decision: dict, target: TargetSpec, test: dict) -> dict[str, bytes]:
        return {}

    def balance(self, y, parts: dict[str, np.ndarray], target: TargetSpec) -> dict[str, Any]:
        """How the target is distributed in each split (``prevalence`` per split for the report)."""
        raise NotImplementedError

    def describe_balance(self, balance: dict[str, Any]) -> str:
        return ", ".join(f"{name} {_fmt(v)}" for name, v in balance["prevalence"].items())

    # -- reporting one prediction ------------------------------------------------------------------------
    def items(self, s, decision: dict, target: TargetSpec) -> list[dict[str, Any]]:
        """One JSON item per record: label(s), probabilities or value."""
        raise NotImplementedError

    def columns(self, s, decision: dict, target: TargetSpec) -> dict[str, Any]:
        """The CSV columns of the same predictions (name -> one value per record)."""
        raise NotImplementedError


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def prevalence_by_split(y, parts: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: round(float(np.mean(y[idx])), 6) for name, idx in parts.items() if len(idx)}
