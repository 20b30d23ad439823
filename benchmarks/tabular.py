"""Disease-risk benchmark: 5x5 repeated stratified CV on Cleveland and Pima, next to published and peer figures.

Published figures are the ones the datasets' own documentation gives (UCI ``.names`` files): accuracies,
so we report our cross-validated accuracy at the 0.5 threshold and, for Pima, the sensitivity at the point
where sensitivity equals specificity (how ADAP was reported). Peers are measured here, on the same folds:
scikit-learn defaults without our preprocessing, and a *leaky* pipeline that imputes and scales on all rows
before cross-validation (what a careless pipeline does; it should not look much better, and the table
shows by how much it flatters itself).

Usage: python benchmarks/tabular.py [--repeats 5] [--no-readme]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import update_readme  # noqa: E402

from medai.data.splits import cv_splits  # noqa: E402
from medai.evaluation.metrics import auroc  # noqa: E402
from medai.modalities import get_modality  # noqa: E402
from medai.modalities.tabular.learners import TabularClassifier  # noqa: E402
from medai.road import TrainOptions  # noqa: E402
from medai.tasks import get_task  # noqa: E402
from medai.tasks.kinds import infer_target  # noqa: E402

PUBLISHED = {
    "heart-disease-cleveland": [
        ("Detrano et al. 1989, logistic discriminant derived on Cleveland, ~77% on the other sites", "accuracy", 0.77),
        ("Aha & Kibler, NTgrowth (instance-based)", "accuracy", 0.770),
        ("Gennari et al. 1989, CLASSIT", "accuracy", 0.789),
    ],
    "diabetes-pima": [
        ("Smith et al. 1988, ADAP (576 train / 192 test)", "sens = spec", 0.76),
    ],
}
TARGET = {"heart-disease-cleveland": 0.90, "diabetes-pima": 0.83}


def equal_error_point(y: np.ndarray, p: np.ndarray) -> float:
    """Sensitivity (= specificity) where the two curves cross, on pooled out-of-fold predictions."""
    thresholds = np.unique(p)
    sens = np.array([np.mean(p[y == 1] >= t) for t in thresholds])
    spec = np.array([np.mean(p[y == 0] < t) for t in thresholds])
    i = int(np.argmin(np.abs(sens - spec)))
    return float((sens[i] + spec[i]) / 2)


def run_cv(make_model, X, y, splits, leaky: bool = False) -> dict[str, float]:
    aucs, accs, eers = [], [], []
    repeats = len(splits) // 5
    for r in range(repeats):
        oof = np.zeros(len(y))
        for train, test in splits[r * 5:(r + 1) * 5]:
            model = make_model()
            model.fit(X.iloc[train] if hasattr(X, "iloc") else X[train], y[train])
            p = model.predict_proba(X.iloc[test] if hasattr(X, "iloc") else X[test])[:, 1]
            oof[test] = p
            aucs.append(auroc(y[test], p))
            accs.append(float(np.mean((p >= 0.5) == y[test])))
        eers.append(equal_error_point(y, oof))
    return {"auroc": float(np.mean(aucs)), "auroc_sd": float(np.std(aucs, ddof=1)),
            "accuracy": float(np.mean(accs)), "sens_eq_spec": float(np.mean(eers))}


def numeric_matrix(X):
    """Peers get plain numbers: categorical codes as numbers (what a quick sklearn script does)."""
    out = X.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].astype(float)
    return out.to_numpy(dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--learners", default="logistic,random-forest,lightgbm,auto")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in ("heart-disease-cleveland", "diabetes-pima"):
        task = get_task(name)
        dataset = get_modality("tabular").load_task_data(task, TrainOptions())
        target = infer_target(dataset.y, dataset.target_column, kind=task.kind, positive_label=task.positive_label)
        X, y = dataset.X, target.encode(dataset.y)  # classes [negative, positive]: y is 1 for the positive class
        splits = cv_splits(y, None, 5, args.repeats, seed=0)
        for learner in args.learners.split(","):
            start = time.perf_counter()
            result = run_cv(lambda learner=learner: TabularClassifier(learner=learner, seed=0), X, y, splits)
            rows.append((name, f"MedAI {learner}", result, time.perf_counter() - start))
            print(f"{name:26s} MedAI {learner:14s} AUROC {result['auroc']:.3f}±{result['auroc_sd']:.3f} "
                  f"acc {result['accuracy']:.3f} sens=spec {result['sens_eq_spec']:.3f} "
                  f"({rows[-1][3]:.0f}s)", flush=True)
        Xn = numeric_matrix(X)
        peers = {
            "sklearn LogisticRegression (median impute + scale, in folds)":
                lambda: make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                                      LogisticRegression(max_iter=5000)),
            "sklearn HistGradientBoosting (defaults)": lambda: HistGradientBoostingClassifier(random_state=0),
        }
        for label, make in peers.items():
            result = run_cv(make, Xn, y, splits)
            rows.append((name, f"peer: {label}", result, 0.0))
        # leaky: preprocessing fitted on all rows before CV
        leaky_X = StandardScaler().fit_transform(SimpleImputer(strategy="median").fit_transform(Xn))
        result = run_cv(lambda: clone(LogisticRegression(max_iter=5000)), leaky_X, y, splits)
        rows.append((name, "peer: leaky logistic (impute+scale on all rows first)", result, 0.0))

    lines = [f"| task | model | CV AUROC (mean ± sd, 5x{args.repeats}) | CV accuracy @0.5 | sens = spec | published |",
             "|---|---|---|---|---|---|"]
    for name, label, r, _seconds in rows:
        lines.append(f"| {name} | {label} | {r['auroc']:.3f} ± {r['auroc_sd']:.3f} | {r['accuracy']:.3f} | "
                     f"{r['sens_eq_spec']:.3f} | |")
    for name, items in PUBLISHED.items():
        for label, metric, value in items:
            accuracy = f"{value:.3f}" if metric == "accuracy" else ""
            crossover = f"{value:.3f}" if metric == "sens = spec" else ""
            lines.append(f"| {name} | published: {label} | | {accuracy} | {crossover} | {metric} |")
    table = "\n".join(lines)
    print()
    print(table)
    for name, target in TARGET.items():
        best = max(r["auroc"] for n, label, r, _ in rows if n == name and label.startswith("MedAI"))
        print(f"{name}: best MedAI CV AUROC {best:.3f} (acceptance >= {target})")
    if not args.no_readme:
        print("README updated" if update_readme("tabular", table) else "README has no results:tabular markers")


if __name__ == "__main__":
    main()
