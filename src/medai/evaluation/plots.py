"""Evaluation plots as PNG bytes: ROC, precision-recall, calibration, confusion matrix, feature importance."""

from __future__ import annotations

import io

import numpy as np


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (every figure MedAI draws goes to PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float = 4.2, height: float = 4.0):
    return pyplot().subplots(figsize=(width, height), dpi=110)


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (no timestamp or software tag, so the same figure gives the same bytes)."""
    plt = pyplot()

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def roc_png(y: np.ndarray, p: np.ndarray, auc: float | None, threshold: float | None = None) -> bytes:
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    fig, ax = _figure()
    ax.plot(fpr, tpr, lw=2, label=f"AUROC {auc:.3f}" if auc is not None else "ROC")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    if threshold is not None:
        pred = p >= threshold
        sens = np.mean(pred[y == 1]) if np.any(y == 1) else np.nan
        fpr_at = np.mean(pred[y == 0]) if np.any(y == 0) else np.nan
        ax.plot([fpr_at], [sens], "o", color="crimson", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC curve (test)")
    ax.legend(loc="lower right")
    return png_bytes(fig)


def pr_png(y: np.ndarray, p: np.ndarray, ap: float | None) -> bytes:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = _figure()
    ax.step(recall, precision, where="post", lw=2, label=f"AUPRC {ap:.3f}" if ap is not None else "PR")
    ax.axhline(np.mean(y), ls="--", color="grey", lw=1, label=f"prevalence {np.mean(y):.2f}")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall (test)",
           xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    return png_bytes(fig)


def calibration_png(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> bytes:
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect")
    xs, ys, ns = [], [], []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            xs.append(p[mask].mean())
            ys.append(y[mask].mean())
            ns.append(mask.sum())
    ax.plot(xs, ys, "o-", lw=2, label="model")
    for x, yv, n in zip(xs, ys, ns, strict=True):
        ax.annotate(str(n), (x, yv), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel="predicted risk", ylabel="observed frequency", title="Calibration (test)",
           xlim=(-0.02, 1.02), ylim=(-0.03, 1.03))
    ax.legend(loc="upper left")
    return png_bytes(fig)


def confusion_png(matrix: list[list[int]], labels: list[str]) -> bytes:
    matrix = np.asarray(matrix)
    fig, ax = _figure(3.6, 3.2)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test)")
    return png_bytes(fig)


def importance_png(names: list[str], values: list[float], title: str = "Mean |SHAP| (test)") -> bytes:
    order = np.argsort(values)[-15:]
    fig, ax = _figure(5.0, 0.3 * len(order) + 1.2)
    ax.barh([names[i] for i in order], [values[i] for i in order], color="steelblue")
    ax.set(xlabel="mean |contribution| to log-odds", title=title)
    return png_bytes(fig)


def roc_per_class_png(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> bytes:
    """One-vs-rest ROC curve per class."""
    from sklearn.metrics import roc_curve

    from medai.evaluation.metrics import auroc

    fig, ax = _figure(4.6, 4.2)
    for k, name in enumerate(classes):
        yk = (np.asarray(y) == k).astype(int)
        if 0 < yk.sum() < len(yk):
            fpr, tpr, _ = roc_curve(yk, proba[:, k])
            ax.plot(fpr, tpr, lw=1.6, label=f"{str(name)[:18]} ({auroc(yk, proba[:, k]):.2f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC per class, one vs rest (test)")
    ax.legend(loc="lower right", fontsize=7)
    return png_bytes(fig)


def label_bars_png(labels: list[str], values: list[float | None], prevalence: list[float]) -> bytes:
    """AUROC per label (multilabel), with each label's positive rate."""
    fig, ax = _figure(5.0, 0.32 * len(labels) + 1.3)
    shown = [v if v is not None else 0.0 for v in values]
    ax.barh([str(n)[:24] for n in labels], shown, color="steelblue")
    for i, (v, rate) in enumerate(zip(values, prevalence, strict=True)):
        text = "n/a" if v is None else f"{v:.2f}"
        ax.text(max(shown[i], 0) + 0.01, i, f"{text}  (rate {rate:.2f})", va="center", fontsize=7)
    ax.axvline(0.5, ls="--", color="grey", lw=1)
    ax.set(xlim=(0, 1.25), xlabel="AUROC (test)", title="AUROC per label")
    return png_bytes(fig)


def predicted_vs_observed_png(y: np.ndarray, pred: np.ndarray, test: dict, name: str) -> bytes:
    fig, ax = _figure()
    ax.scatter(pred, y, s=10, alpha=0.6)
    low, high = float(min(np.min(y), np.min(pred))), float(max(np.max(y), np.max(pred)))
    ax.plot([low, high], [low, high], "--", color="grey", lw=1, label="y = prediction")
    r2, rmse = test.get("r2", {}).get("value"), test.get("rmse", {}).get("value")
    label = "test" if r2 is None or rmse is None else f"R² {r2:.3f}, RMSE {rmse:.3g}"
    ax.set(xlabel=f"predicted {name}", ylabel=f"observed {name}", title=f"Predicted vs observed ({label})")
    ax.legend(loc="upper left")
    return png_bytes(fig)


def residuals_png(y: np.ndarray, pred: np.ndarray, name: str) -> bytes:
    fig, ax = _figure()
    ax.scatter(pred, np.asarray(y) - np.asarray(pred), s=10, alpha=0.6)
    ax.axhline(0, ls="--", color="grey", lw=1)
    ax.set(xlabel=f"predicted {name}", ylabel="observed - predicted", title="Residuals (test)")
    return png_bytes(fig)


def coverage_png(nominal: float, groups: list[str], coverage: list[float | None]) -> bytes:
    """Empirical coverage of the conformal sets/intervals per class (or overall) against the nominal level."""
    fig, ax = _figure(4.6, 0.32 * len(groups) + 1.4)
    shown = [c if c is not None else 0.0 for c in coverage]
    ax.barh([str(g)[:24] for g in groups], shown, color="seagreen")
    ax.axvline(nominal, ls="--", color="crimson", lw=1.2, label=f"nominal {nominal:.2f}")
    ax.set(xlim=(0, 1.02), xlabel="empirical coverage (test)", title="Conformal coverage")
    ax.legend(loc="lower left", fontsize=7)
    return png_bytes(fig)
