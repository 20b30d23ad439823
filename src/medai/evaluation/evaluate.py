"""Evaluation every modality reuses: metrics with bootstrap CIs at a chosen threshold, CV summaries."""

from __future__ import annotations

import numpy as np
from scipy import stats

from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.metrics import binary_metrics, confusion, multiclass_metrics


def evaluate_binary(
    y: np.ndarray, p: np.ndarray, threshold: float, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, float | None]]:
    """``{metric: {"value", "ci_low", "ci_high"}}`` for every binary metric at ``p >= threshold``."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    return bootstrap_metrics(lambda i: binary_metrics(y[i], p[i], threshold), y, n_boot=n_boot, seed=seed)


def evaluate_multiclass(
    y: np.ndarray, proba: np.ndarray, *, n_boot: int = 500, seed: int = 0
) -> dict[str, dict[str, float | None]]:
    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=float)
    return bootstrap_metrics(lambda i: multiclass_metrics(y[i], proba[i]), y, n_boot=n_boot, seed=seed)


def confusion_matrix(y: np.ndarray, p: np.ndarray, threshold: float) -> list[list[int]]:
    """Rows = actual (negative, positive), columns = predicted (negative, positive)."""
    tn, fp, fn, tp = confusion(np.asarray(y).astype(int), np.asarray(p, dtype=float), threshold)
    return [[tn, fp], [fn, tp]]


def summarize_cv(fold_metrics: list[dict[str, float]], folds: int, level: float = 0.95) -> dict[str, dict]:
    """Mean, sd and a 95% CI over cross-validation folds.

    Fold results overlap in their training data, so the naive standard error is too small. The CI uses
    the Nadeau & Bengio (2003) corrected variance: (1/J + n_test/n_train) * s^2 with n_test/n_train = 1/(k-1).
    """
    out: dict[str, dict] = {}
    names = fold_metrics[0].keys() if fold_metrics else []
    for name in names:
        values = np.array([m[name] for m in fold_metrics], dtype=float)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            continue
        mean, sd = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
        half = 0.0
        if len(values) > 1:
            corrected = np.sqrt((1 / len(values) + 1 / (folds - 1)) * sd**2)
            half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * corrected)
        out[name] = {
            "mean": round(mean, 6), "std": round(sd, 6),
            "ci_low": round(mean - half, 6), "ci_high": round(mean + half, 6), "n_folds": int(len(values)),
        }
    return out
