"""Explanations and report sections of the treatment modality's models (survival and treatment effect)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.evaluation import plots


def _jsonable(value):
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _contributions(X, values: np.ndarray, top_k: int, about: str) -> list[dict[str, Any]]:
    names = list(X.columns)
    out = []
    for i in range(len(X)):
        order = np.argsort(-np.abs(values[i]))[:top_k]
        items = [{"feature": names[j], "value": _jsonable(X.iloc[i, j]), "contribution": float(values[i, j])}
                 for j in order]
        out.append({"contributions": items, "explains": about,
                    "summary": "; ".join(f"{c['feature']}={c['contribution']:+.3f}" for c in items)})
    return out


def explain(model, X, top_k: int = 5) -> list[dict[str, Any]]:
    if model.kind == "survival":
        linear = model.learner.chosen_learner_ in ("cox", "cox-ridge", "coxnet")
        return _contributions(X, model.learner.contributions(X), top_k,
                              "log relative hazard" if linear else "risk score")
    values = model.learner.effect_contributions(X)
    return _contributions(X, values, top_k, f"expected benefit of {model.target.classes[-1]!r} over "
                                            f"{model.target.classes[0]!r}")


def report_extras(model, X_test, y_test) -> dict[str, Any]:
    if model.kind == "survival":
        return survival_extras(model, X_test)
    from medai.modalities.treatment.effects import effect_extras

    return effect_extras(model, X_test, y_test)


def survival_extras(model, X_test) -> dict[str, Any]:
    learner = model.learner
    names = list(X_test.columns)
    importance = np.abs(learner.contributions(X_test)).mean(axis=0)
    importances = {n: round(float(v), 6) for n, v in zip(names, importance, strict=True)}
    metrics: dict[str, Any] = {"feature_importance": importances}
    tables, limitations = [], []
    if learner.selection_scores_:
        metrics["auto_selection"] = learner.selection_scores_
        se = getattr(learner, "selection_se_", {})
        rule = "the simplest learner (listed first) within one standard error of the best"
        tables.append({"title": "Learner chosen by inner cross-validated Harrell C-index (training records)",
                       "note": f"Chosen: {learner.chosen_learner_} ({rule}).",
                       "header": ["learner", "C-index (mean over folds)", "standard error"],
                       "rows": [[k, v, se.get(k)] for k, v in learner.selection_scores_.items()]})
    summary = learner.cox_summary_
    if summary:
        metrics["cox"] = summary
        tables.append({"title": "Cox model: hazard ratios with 95% CIs (lifelines, training records)",
                       "note": "Numeric features per standard deviation; categories against the rest.",
                       "header": ["feature", "hazard ratio", "95% CI low", "95% CI high", "p"],
                       "rows": [[r["feature"], r["hazard_ratio"], r["ci_low"], r["ci_high"], r["p"]]
                                for r in summary["hazard_ratios"]]})
        tables.append({"title": "Proportional-hazards check: Schoenfeld residual test (rank time transform)",
                       "note": "A small p says the feature's effect changes over time (PH assumption violated).",
                       "header": ["feature", "test statistic", "p"],
                       "rows": [[r["feature"], r["statistic"], r["p"]] for r in summary["schoenfeld"]]})
        if summary["global_violation"]:
            violated = [r["feature"] for r in summary["schoenfeld"] if r["p"] < 0.05]
            limitations.append("The Schoenfeld test rejects proportional hazards for "
                                f"{', '.join(violated)}: Cox hazard ratios are time-averaged for these features.")
    about = "mean |contribution to the risk score| (test)"
    return {"plots": {"feature_importance": plots.importance_png(names, list(importance), title=about)},
            "metrics": metrics, "tables": tables, "limitations": limitations}
