"""The leakage sentinel: a feature that on its own predicts the target (almost) perfectly, or one that looks
like another outcome, is usually recorded after the fact (a second label, a derived code, a discharge note)
and makes the model worthless in practice while its test figures shine.

Each feature is scored alone by a small decision tree under 3-fold cross-validation: AUROC (macro one-vs-rest
for several classes) for classification, R² for regression.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from medai.evaluation.metrics import auroc, multiclass_metrics

NEAR_PERFECT = {"auroc": 0.99, "r2": 0.98}
OUTCOME_LIKE = {"auroc": 0.75, "r2": 0.5}
OUTCOME_WORDS = re.compile(
    r"outcome|label|target|diagnos|death|died|dead|mortal|surviv|status|event|approv|tox|response|readmi|"
    r"result|recurr|relapse|prognos|discharg|_class$|^class|endpoint", re.IGNORECASE)


def _alone(column: pd.Series, y: np.ndarray, kind: str) -> tuple[str, float]:
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if pd.api.types.is_numeric_dtype(column):
        values = column.astype(float).to_numpy()
        filled = np.where(np.isnan(values), np.nanmin(values) - 1 if np.any(~np.isnan(values)) else 0.0, values)
    else:
        filled = pd.Series(pd.Categorical(column.astype(str))).cat.codes.to_numpy().astype(float)
    X = filled.reshape(-1, 1)
    if kind == "regression":
        model = DecisionTreeRegressor(max_depth=4, min_samples_leaf=5, random_state=0)
        pred = cross_val_predict(model, X, y, cv=KFold(3, shuffle=True, random_state=0))
        total = float(np.sum((y - y.mean()) ** 2))
        return "r2", 1 - float(np.sum((y - pred) ** 2)) / total if total else 0.0
    model = DecisionTreeClassifier(max_depth=4, min_samples_leaf=5, random_state=0)
    proba = cross_val_predict(model, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0), method="predict_proba")
    if proba.shape[1] == 2:
        return "auroc", auroc(y, proba[:, 1])
    return "auroc", multiclass_metrics(y, proba)["auroc_macro"]


def leakage_warnings(X: pd.DataFrame, y: np.ndarray, kind: str) -> list[str]:
    """One warning per feature that predicts the target on its own too well, or is another outcome."""
    if kind not in ("binary", "multiclass", "regression") or len(y) < 30:
        return []
    if kind != "regression" and np.bincount(np.asarray(y, dtype=int)).min() < 3:
        return []
    warnings = []
    for name in X.columns:
        if X[name].isna().all():
            continue
        metric, score = _alone(X[name], np.asarray(y), kind)
        if not np.isfinite(score):
            continue
        text = f"{metric.upper() if metric == 'auroc' else 'R²'} {score:.2f}"
        if score >= NEAR_PERFECT[metric]:
            warnings.append(f"possible leakage: column {name!r} on its own predicts the target almost perfectly "
                            f"({text}); check that it is known before the outcome, or leave it out")
        elif OUTCOME_WORDS.search(str(name)) and score >= OUTCOME_LIKE[metric]:
            warnings.append(f"possible leakage: column {name!r} looks like another outcome and predicts the target "
                            f"on its own ({text}); leave it out unless it is known before the outcome")
    return warnings
