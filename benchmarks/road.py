"""The one road's acceptance figures: a multiclass and a regression target, and conformal coverage.

- Multiclass: Heart Disease Cleveland with its graded outcome ``num`` (0-4) as the target (task
  ``heart-disease-severity``), 5x3 repeated stratified CV through the road for every learner, and peers on the
  identical folds: scikit-learn's multinomial logistic regression and a random forest (impute, scale and
  one-hot inside the folds). Macro one-vs-rest AUROC.
- Regression: scikit-learn's diabetes data written as a CSV and trained through ``--data --target target``
  (the generic path), 5x3 repeated CV; peers on the identical folds: ridge and ordinary least squares.
- Conformal: at 90% nominal coverage, the empirical test coverage of the conformal sets (intervals) with the
  road's default mode over seeds 0-4 for WDBC, Pima, diabetes regression and PneumoniaMNIST. The image models
  (the pneumonia-xray recipe, official splits) are trained through the road once per seed; their validation and
  test scores are cached in ``--images-out`` (``--train-images`` trains the missing seeds first; ``--seeds 0,2``
  only trains those, so seeds can train side by side), and calibration variants - marginal (standard) or
  class-conditional sets, calibrated on every validation record or only on those held out from early stopping -
  are compared on the cached scores, none of them chosen on the test split.

Usage: python benchmarks/road.py [--parts multiclass,regression,conformal] [--train-images] [--seeds 0,1]
                                 [--threads 1] [--reuse-tabular] [--no-readme]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import update_readme  # noqa: E402

from medai.data.dataset import take  # noqa: E402
from medai.data.splits import cv_splits  # noqa: E402
from medai.evaluation.conformal import Conformal  # noqa: E402
from medai.evaluation.kinds.regression import regression_metrics  # noqa: E402
from medai.evaluation.metrics import multiclass_metrics  # noqa: E402
from medai.modalities import get_modality  # noqa: E402
from medai.road import TrainOptions, train_data, train_task  # noqa: E402
from medai.road import train as road_train  # noqa: E402
from medai.tasks import get_task  # noqa: E402
from medai.tasks.kinds import infer_target  # noqa: E402

LEARNERS = {"classification": ("logistic", "random-forest", "lightgbm", "auto"),
            "regression": ("ridge", "random-forest", "lightgbm", "auto")}
SEEDS = (0, 1, 2, 3, 4)


def mean_sd(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def preprocessing():
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    return ColumnTransformer([("num", numeric, make_column_selector(dtype_include=np.number)),
                              ("cat", categorical, make_column_selector(dtype_exclude=np.number))])


def peer_cv(make, X, y, splits, score) -> list[float]:
    out = []
    for train, test in splits:
        model = make().fit(X.iloc[train], y[train])
        out.append(score(y[test], model, X.iloc[test]))
    return out


def multiclass(work: Path) -> list[str]:
    rows = ["| model (5x3 CV, heart-disease-severity, num 0-4) | macro AUROC (mean ± sd) | 95% CI | accuracy |",
            "|---|---|---|---|"]
    for learner in LEARNERS["classification"]:
        start = time.perf_counter()
        m = train_task("heart-disease-severity", work / f"mc-{learner}",
                       TrainOptions(learner=learner, cv="5x3", show_progress=False)).metrics["cv"]
        entry = m["auroc_macro"]
        rows.append(f"| MedAI {learner} | {entry['mean']:.3f} ± {entry['std']:.3f} | "
                    f"{entry['ci_low']:.3f}-{entry['ci_high']:.3f} | {m['accuracy']['mean']:.3f} |")
        print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    task = get_task("heart-disease-severity")
    data = get_modality("tabular").load_task_data(task, TrainOptions())
    y = infer_target(data.y, data.target_column, kind="multiclass").encode(data.y)
    splits = cv_splits(y, None, 5, 3, seed=0)

    def score(truth, model, X):
        return multiclass_metrics(truth, model.predict_proba(X))

    peers = {"peer: sklearn LogisticRegression (multinomial; impute, scale, one-hot in folds)":
             lambda: make_pipeline(preprocessing(), LogisticRegression(max_iter=5000)),
             "peer: sklearn RandomForest (500 trees)":
             lambda: make_pipeline(preprocessing(), RandomForestClassifier(500, random_state=0, n_jobs=1))}
    for label, make in peers.items():
        folds = peer_cv(make, data.X, y, splits, score)
        aucs = [f["auroc_macro"] for f in folds]
        rows.append(f"| {label} | {mean_sd(aucs)} | | {statistics.mean(f['accuracy'] for f in folds):.3f} |")
        print(rows[-1], flush=True)
    return rows


def diabetes_csv(work: Path) -> Path:
    from sklearn.datasets import load_diabetes

    path = work / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


def regression(work: Path) -> list[str]:
    path = diabetes_csv(work)
    rows = ["| model (5x3 CV, diabetes CSV through --data --target target) | CV R² (mean ± sd) | CV RMSE | "
            "test RMSE (95% CI) |", "|---|---|---|---|"]
    for learner in LEARNERS["regression"]:
        m = train_data(path, work / f"reg-{learner}", TrainOptions(target="target", learner=learner, cv="5x3",
                                                                   show_progress=False)).metrics
        cv, test = m["cv"], m["test"]["rmse"]
        rows.append(f"| MedAI {learner} | {cv['r2']['mean']:.3f} ± {cv['r2']['std']:.3f} | "
                    f"{cv['rmse']['mean']:.1f} ± {cv['rmse']['std']:.1f} | "
                    f"{test['value']:.1f} ({test['ci_low']:.1f}-{test['ci_high']:.1f}) |")
        print(rows[-1], flush=True)
    data = get_modality("tabular").read_training_data(path, TrainOptions(target="target"))
    y = data.y.to_numpy(dtype=float)
    splits = cv_splits(y, None, 5, 3, seed=0, stratify=False)

    def score(truth, model, X):
        return regression_metrics(truth, model.predict(X))

    for label, make in {"peer: sklearn Ridge (alpha 1, scaled)": lambda: make_pipeline(StandardScaler(), Ridge()),
                        "peer: sklearn LinearRegression": LinearRegression}.items():
        folds = peer_cv(make, data.X, y, splits, score)
        rows.append(f"| {label} | {mean_sd([f['r2'] for f in folds])} | "
                    f"{statistics.mean(f['rmse'] for f in folds):.1f} | |")
        print(rows[-1], flush=True)
    return rows


def coverage_runs(work: Path) -> dict[str, list[tuple[float, float]]]:
    runs: dict[str, list[tuple[float, float]]] = {}
    for label, kwargs in (("breast-cancer-wdbc", {}), ("diabetes-pima", {}),
                          ("diabetes regression (CSV)", {"target": "target"})):
        for seed in SEEDS:
            options = TrainOptions(seed=seed, cv=None, show_progress=False, **kwargs)
            out = work / f"cov-{label[:8]}-{seed}"
            result = (train_data(diabetes_csv(work), out, options) if kwargs else train_task(label, out, options))
            c = result.metrics["conformal"]
            size = (c.get("mean_set_size") or c.get("mean_interval_width"))["value"]
            runs.setdefault(label, []).append((c["coverage"]["value"], size))
            print(f"{label} seed {seed}: coverage {c['coverage']['value']:.3f} size/width {size:.3f}", flush=True)
    return runs


def image_cache(root: Path, seed: int) -> Path:
    return root / f"pneumonia-xray-s{seed}.npz"


def train_images(root: Path, seeds, threads: int) -> None:
    """Train the pneumonia-xray recipe through the road for each seed and cache what calibration needs: the
    validation and test scores and labels, and which validation records early stopping watched (``stop``) and
    which were held out to calibrate (``cal``). Variants of the calibration are then compared without training."""
    task = get_task("pneumonia-xray")
    data = get_modality("imaging").load_task_data(task, TrainOptions())
    for seed in seeds:
        start = time.perf_counter()
        result = road_train(task, data, root / f"pneumonia-xray-s{seed}",
                       TrainOptions(seed=seed, show_progress=False, extra={"threads": threads}))
        parts, model = result.parts, result.model
        y_fit = model.target.encode(data.y, data.source)
        m = result.metrics
        np.savez(image_cache(root, seed), s_val=model.scores(take(data.X, parts["val"])),
                 s_test=model.scores(take(data.X, parts["test"])), y_val=y_fit[parts["val"]],
                 y_test=y_fit[parts["test"]], cal=np.isin(parts["val"], parts["cal"]),
                 stop=np.isin(parts["val"], parts["stop"]))
        info = {"seed": seed, "auroc": m["test"]["auroc"]["value"], "accuracy": m["test"]["accuracy"]["value"],
                "val_auroc": m["training"]["best_val_auroc"], "epochs": m["training"]["epochs_run"],
                "minutes": (time.perf_counter() - start) / 60, "classes": model.target.classes,
                "positive_index": model.target.positive_index, "conformal": m["conformal"]}
        image_cache(root, seed).with_suffix(".json").write_text(json.dumps(info, indent=1))
        print(f"pneumonia-xray seed {seed}: AUROC {info['auroc']:.4f}, conformal {m['conformal']['mode']} coverage "
              f"{m['conformal']['coverage']['value']:.3f}, {info['minutes']:.1f} min", flush=True)


# Calibration variants compared on the cached scores: (conformal mode, calibration records).
VARIANTS = (("standard", "all validation"), ("standard", "held out"), ("class-conditional", "all validation"),
            ("class-conditional", "held out"), ("auto", "held out"))


def image_variants(root: Path) -> dict[str, list[dict]]:
    """Per variant, per cached seed: test coverage, per-class coverage, mean set size, empty and singleton sets."""
    out: dict[str, list[dict]] = {}
    for seed in SEEDS:
        if not image_cache(root, seed).exists():
            continue
        c = np.load(image_cache(root, seed))
        info = json.loads(image_cache(root, seed).with_suffix(".json").read_text())
        for mode, records in VARIANTS:
            cal = c["cal"] if records == "held out" else np.ones(len(c["y_val"]), dtype=bool)
            model = Conformal.fit("binary", c["y_val"][cal], c["s_val"][cal], coverage=0.9, mode=mode,
                                  classes=info["classes"], positive_index=info["positive_index"])
            r = model.evaluate(c["y_test"], c["s_test"], positive_index=info["positive_index"], n_boot=200)
            out.setdefault(f"{mode} ({model.mode}), calibrated on {records}", []).append(
                {"seed": seed, "coverage": r["coverage"]["value"], "size": r["mean_set_size"]["value"],
                 "empty": r["empty"], "per_class": r["per_class"], "n_cal": int(cal.sum()),
                 "auroc": info["auroc"], "val_auroc": info["val_auroc"]})
    return out


def image_coverage(root: Path, train_missing: bool, threads: int) -> tuple[list[tuple[float, float]], list[str]]:
    missing = [s for s in SEEDS if not image_cache(root, s).exists()]
    if missing and train_missing:
        train_images(root, missing, threads)
    variants = image_variants(root)
    if not variants:
        return [], []
    rows = ["| PneumoniaMNIST calibration variant (90% nominal) | seeds | coverage per seed | mean coverage | "
            "coverage normal / pneumonia | mean set size | empty sets |", "|---|---|---|---|---|---|---|"]
    for label, runs in variants.items():
        per_class = {k: statistics.mean(r["per_class"][k] for r in runs) for k in runs[0]["per_class"]}
        rows.append(f"| {label} | {len(runs)} | {', '.join(format(r['coverage'], '.3f') for r in runs)} | "
                    f"{mean_sd([r['coverage'] for r in runs])} | "
                    f"{' / '.join(format(v, '.3f') for v in per_class.values())} | "
                    f"{statistics.mean(r['size'] for r in runs):.3f} | "
                    f"{statistics.mean(r['empty'] for r in runs):.3f} |")
    default = next(runs for label, runs in variants.items() if label.startswith("auto"))
    return [(r["coverage"], r["size"]) for r in default], rows


def conformal(work: Path, imaging_out: Path, train_images: bool, threads: int, root: Path, reuse: bool) -> list[str]:
    cached = root / "coverage-tabular.json"  # the tabular runs of the last full run (--reuse-tabular reads them)
    if reuse and cached.exists():
        runs = {label: [tuple(v) for v in values] for label, values in json.loads(cached.read_text()).items()}
    else:
        runs = coverage_runs(work)
        cached.write_text(json.dumps(runs))
    images, variant_rows = image_coverage(imaging_out, train_images, threads)
    if images:
        runs["PneumoniaMNIST (pneumonia-xray recipe)"] = images
    rows = ["| data set (90% nominal, default conformal mode) | seeds | test coverage per seed | "
            "mean test coverage (sd) | within 0.87-0.93 | mean set size / interval width |",
            "|---|---|---|---|---|---|"]
    for label, values in runs.items():
        coverage = [c for c, _ in values]
        mean = statistics.mean(coverage)
        rows.append(f"| {label} | {len(values)} | {', '.join(format(c, '.3f') for c in coverage)} | "
                    f"{mean_sd(coverage)} | {'yes' if 0.87 <= mean <= 0.93 else 'NO'} | "
                    f"{statistics.mean(s for _, s in values):.3f} |")
    if not images:
        rows.append("| PneumoniaMNIST | 0 | | not run (python benchmarks/road.py --parts conformal --train-images) "
                    "| | |")
    return rows + ([""] + variant_rows if variant_rows else [])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="multiclass,regression,conformal")
    parser.add_argument("--images-out", default="runs/bench-road/images",
                        help="PneumoniaMNIST models and their cached validation/test scores")
    parser.add_argument("--train-images", action="store_true", help="train missing PneumoniaMNIST seeds 0-4")
    parser.add_argument("--seeds", default=None, help="comma-separated image seeds to train now (then exit)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for image training")
    parser.add_argument("--reuse-tabular", action="store_true",
                        help="take the WDBC/Pima/diabetes coverage runs from the last run's cache in --out")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--out", default="runs/bench-road")
    args = parser.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    parts = {"multiclass": multiclass, "regression": regression,
             "conformal": lambda w: conformal(w, Path(args.images_out), args.train_images, args.threads, root,
                                              args.reuse_tabular)}
    if args.seeds is not None:  # train image seeds only (several such processes may run side by side)
        train_images(Path(args.images_out), [int(s) for s in args.seeds.split(",")], args.threads)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, args.parts.split(",")):
            rows = parts[name](Path(tmp))
            (root / f"{name}.json").write_text(json.dumps(rows))
    tables = ["\n".join(json.loads((root / f"{name}.json").read_text())) for name in parts
              if (root / f"{name}.json").exists()]
    print("\n\n".join(tables))
    if not args.no_readme:
        print("README updated" if update_readme("road", "\n\n".join(tables)) else "README has no results:road markers")


if __name__ == "__main__":
    main()
