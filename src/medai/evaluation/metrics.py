"""Classification metrics, computed with numpy so that thousands of bootstrap resamples stay fast.

Binary inputs: ``y`` is 0/1 (1 = has the condition), ``p`` the predicted probability of class 1, and the
decision rule is ``p >= threshold``. The formulas match scikit-learn (checked by the tests).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

BINARY_METRICS = ("auroc", "auprc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "brier", "ece")
HIGHER_IS_BETTER = {name: name not in {"brier", "ece"} for name in BINARY_METRICS}


def _safe_div(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (the step-wise area under the precision-recall curve, as scikit-learn)."""
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), len(ys) - 1]
    tps = np.cumsum(ys)[last]
    fps = last + 1 - tps
    precision = tps / (tps + fps)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins of the predicted risk: sum_b (n_b/n) |mean(y_b) - mean(p_b)|."""
    if len(y) == 0:
        return float("nan")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    observed = np.bincount(bins, weights=y, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)
    used = counts > 0
    return float(np.sum(np.abs(observed[used] - predicted[used])) / len(y))


def confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(tn, fp, fn, tp) for the decision rule ``p >= threshold``."""
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = len(y) - tp - fp - fn
    return tn, fp, fn, tp


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    tn, fp, fn, tp = confusion(y, p, threshold)
    sensitivity = _safe_div(tp, tp + fn)
    ppv = _safe_div(tp, tp + fp)
    return {
        "auroc": auroc(y, p),
        "auprc": auprc(y, p),
        "accuracy": _safe_div(tp + tn, len(y)),
        "sensitivity": sensitivity,
        "specificity": _safe_div(tn, tn + fp),
        "ppv": ppv,
        "npv": _safe_div(tn, tn + fn),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(y, p),
    }


def finite_mean(values) -> float:
    """Mean of the finite values (a class absent from a resample has no AUROC); NaN when there are none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def multiclass_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Macro and micro AUROC (one-vs-rest), accuracy, macro/micro F1, per-class sensitivity (argmax rule)."""
    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=float)
    n_classes = proba.shape[1]
    pred = proba.argmax(axis=1)
    onehot = np.eye(n_classes, dtype=int)[y]
    per_class_auc = [auroc(onehot[:, k], proba[:, k]) for k in range(n_classes)]
    out: dict[str, float] = {
        "auroc_macro": finite_mean(per_class_auc),
        "auroc_micro": auroc(onehot.ravel(), proba.ravel()),
        "accuracy": float(np.mean(pred == y)),
    }
    tp = np.array([np.sum((pred == k) & (y == k)) for k in range(n_classes)], dtype=float)
    fp = np.array([np.sum((pred == k) & (y != k)) for k in range(n_classes)], dtype=float)
    fn = np.array([np.sum((pred != k) & (y == k)) for k in range(n_classes)], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
    out["f1_macro"] = float(np.mean(f1))
    out["f1_micro"] = float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()))
    out["sensitivity_macro"] = finite_mean(recall)
    for k in range(n_classes):
        out[f"sensitivity_class_{k}"] = float(recall[k])
    return out
