"""Molecules: MedAI's learners against plain peers on identical splits, in one run.

For each built-in task and split protocol (BBBP and BACE: deterministic scaffold; Tox21: random, and scaffold
beside it; ESOL: random), for each seed, the molecules are read and split once; then
- ``MedAI auto``: the whole road (``medai.road.train``: standardisation, the modality's split, ``auto`` - for
  one target a fixed default (classification: the mean of random forests on Morgan counts, on Morgan +
  descriptors and on descriptors + MACCS, and for binary targets the MinMax-kernel SVM on Morgan counts),
  replaced by an ensemble chosen by 5-fold cross-validation inside the training molecules (scaffold-grouped
  for scaffold splits) and greedy ensemble selection only when that beats the default on every inner fold;
  for Tox21 the mean of extra trees and LightGBM on all features - decision rule, conformal, report, artifact);
- ``peer RF(500) Morgan``: scikit-learn RandomForest(500) with default settings on Morgan counts (radius 2, 2048) -
  the issue's BACE peer (0.867 on the deterministic scaffold split);
- ``peer RF``: scikit-learn RandomForest(500) with default settings on Morgan counts + RDKit 2D descriptors;
- ``peer LightGBM``: LightGBM with default settings on the same features;
- ``peer chemprop``: chemprop 2.3.1 D-MPNN with its defaults (50 epochs, the epoch of lowest validation loss;
  ``--chemprop-epochs N`` caps the epochs where the CPU does not allow 50, and the table says so);
all fitted on the same training molecules and scored on the same test molecules by the same metric (ROC-AUC,
macro over tasks for Tox21; RMSE for ESOL). CPU time (this process, all threads) and wall time per run are
measured. For classifiers the conformal coverage of the road's sets (standard: marginal) is shown beside the
coverage that class-conditional (Mondrian) sets, calibrated on the same validation molecules, reach on the test
molecules (``--conformal class-conditional``). Results are kept per run in ``--results`` (one file per task, so
tasks can run in separate processes; a rerun skips what is done) and the table goes into README.

    python benchmarks/molecules.py [--tasks bbbp,bace,tox21,tox21-scaffold,esol] [--seeds 0,1,2] [--no-chemprop]
        [--chemprop-epochs 50] [--models "MedAI auto,peer RF(500)"] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from readme_table import update_readme  # noqa: E402

RUNS = {  # name -> (task, split, target text)
    "bbbp": ("bbbp", "scaffold", "ROC-AUC >= 0.78"),
    "bace": ("bace", "scaffold", "ROC-AUC >= 0.88"),
    "tox21": ("tox21", "random", "mean ROC-AUC >= 0.85"),
    "tox21-scaffold": ("tox21", "scaffold", "(reported beside)"),
    "esol": ("esol", "random", "RMSE <= 0.55"),
}
MODELS = ("MedAI auto", "peer RF(500) Morgan", "peer RF(500)", "peer LightGBM", "peer chemprop")
LIMITS = {"tox21": 30, "tox21-scaffold": 30}  # minutes per run (the budget); others 10


def headline(evaluator, kind, y, s) -> float:
    decision = {"threshold": 0.5, "thresholds": {}} if kind != "regression" else {}
    if kind == "multilabel":
        from medai.evaluation.kinds.multilabel import multilabel_metrics

        return multilabel_metrics(y, s, np.full(y.shape[1], 0.5), [str(j) for j in range(y.shape[1])])["auroc_macro"]
    return float(evaluator.point_metrics(y, s, decision)[evaluator.headline])


def peer(model: str, kind: str, F_train, y_train, F_test, seed: int):
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    def build():
        if model.startswith("peer RF(500)"):
            cls = RandomForestRegressor if kind == "regression" else RandomForestClassifier
            return cls(n_estimators=500, random_state=seed, n_jobs=2)
        cls = LGBMRegressor if kind == "regression" else LGBMClassifier
        return cls(random_state=seed, n_jobs=1, verbosity=-1)  # one thread: OpenMP spin-waits on a busy machine

    if kind == "regression":
        return build().fit(F_train, y_train).predict(F_test)
    if kind == "binary":
        return build().fit(F_train, y_train).predict_proba(F_test)[:, 1]
    out = np.zeros((len(F_test), y_train.shape[1]))
    for j in range(y_train.shape[1]):
        known = ~np.isnan(y_train[:, j])
        fitted = build().fit(F_train[known], y_train[known, j].astype(int))
        out[:, j] = fitted.predict_proba(F_test)[:, 1]
    return out


def mondrian_coverage(model, dataset, parts, target, y_fit, seed: int) -> float | None:
    """Test coverage of class-conditional conformal sets calibrated on the validation molecules."""
    if target.kind == "regression":
        return None
    from medai.evaluation.conformal import Conformal

    s_val, s_test = (model.evaluator.scores(model.learner, dataset.X[parts[name]], target) for name in ("val", "test"))
    conformal = Conformal.fit(target.kind, y_fit[parts["val"]], s_val, coverage=0.9, mode="class-conditional",
                              classes=target.classes, positive_index=target.positive_index)
    return conformal.evaluate(y_fit[parts["test"]], s_test, positive_index=target.positive_index, n_boot=20,
                              seed=seed)["coverage"]["value"]


def run_one(name: str, seed: int, model: str, chemprop_epochs: int = 50) -> dict:
    from medai.evaluation.kinds import evaluator_for
    from medai.modalities import get_modality
    from medai.modalities.molecules.features import Featurizer
    from medai.road import TrainOptions, train
    from medai.tasks import get_task
    from medai.tasks.kinds import infer_target

    task_name, split, _ = RUNS[name]
    task, modality = get_task(task_name), get_modality("molecules")
    options = TrainOptions(seed=seed, learner="auto", cv="none", n_boot=200, show_progress=False,
                           conformal="standard", extra={"split": split})  # the table's "standard" column
    dataset = modality.load_task_data(task, options)
    target = infer_target(dataset.y, dataset.target_column, kind=task.kind, positive_label=task.positive_label)
    evaluator = evaluator_for(target.kind)
    y_fit = target.encode(dataset.y)
    y = evaluator.outcome(y_fit, target)
    parts = dataset.official_split
    cpu, wall = time.process_time(), time.perf_counter()
    if model == "MedAI auto":
        with tempfile.TemporaryDirectory() as tmp:
            result = train(task, dataset, Path(tmp) / "m", options, modality)
        value = result.metrics["test"][evaluator.headline]["value"]
        extra = {"learner": result.metrics["learner"],
                 "selection": result.metrics.get("training", {}).get("selection"),
                 "coverage": result.metrics["conformal"].get("coverage", {}).get("value"),
                 "in_domain": result.metrics.get("applicability_domain", {}).get("fraction_in_domain"),
                 "coverage_mondrian": mondrian_coverage(result.model, dataset, parts, target, y_fit, seed)}
    elif model == "peer chemprop":
        from medai.modalities.molecules.mpnn import ChempropLearner

        learner = ChempropLearner(task=target.kind, n_classes=max(2, len(target.classes)), seed=seed,
                                  epochs=chemprop_epochs)
        learner.fit(dataset.X[parts["train"]], y_fit[parts["train"]], dataset.X[parts["val"]], y_fit[parts["val"]])
        value = headline(evaluator, target.kind, y[parts["test"]],
                         evaluator.scores(learner, dataset.X[parts["test"]], target))
        extra = {"best_epoch": int(learner.best_epoch_), "epochs": chemprop_epochs}
    else:
        featurizer = Featurizer(("morgan",) if model.endswith("Morgan") else ("morgan", "rdkit2d"), 2, 2048)
        F = featurizer.transform(dataset.X)
        s = peer(model, target.kind, F[parts["train"]], y_fit[parts["train"]], F[parts["test"]], seed)
        value = headline(evaluator, target.kind, y[parts["test"]], s)
        extra = {}
    return {"value": float(value), "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
            "sizes": {k: int(len(v)) for k, v in parts.items()}, "metric": evaluator.headline, **extra}


def _mean(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs if r.get(key) is not None]
    return f"{np.mean(values):.2f}" if values else ""


def _coverage(runs: list[dict]) -> str:
    standard, mondrian = _mean(runs, "coverage"), _mean(runs, "coverage_mondrian")
    return f"{standard} / {mondrian}" if mondrian else standard


def table(results: dict, names: list[str], models: list[str]) -> str:
    lines = ["| task (split) | model | test metric (mean ± sd over seeds) | seeds | CPU min/run (max) | "
             "wall min/run (max) | conformal coverage at 90%: standard / class-conditional | test in domain | target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        task, split, target = RUNS[name]
        if not any(key.startswith(f"{name}|") for key in results):
            lines.append(f"| {task} ({split}) | (all) | not measured in this run | 0 | | | | | {target} |")
        for model in models:
            runs = [r for key, r in results.items() if key.startswith(f"{name}|{model}|")]
            if not runs:
                continue
            values = np.array([r["value"] for r in runs])
            metric = runs[0]["metric"].replace("auroc_macro", "ROC-AUC (mean of tasks)").replace("auroc", "ROC-AUC")
            label = model
            if model == "peer chemprop" and any(r.get("epochs", 50) != 50 for r in runs):
                label = f"peer chemprop ({'/'.join(sorted({str(r.get('epochs', 50)) for r in runs}))} epochs)"
            lines.append(f"| {task} ({split}) | {label} | {metric} {values.mean():.3f} ± {values.std():.3f} | "
                         f"{len(runs)} | {max(r['cpu_s'] for r in runs) / 60:.1f} | "
                         f"{max(r['wall_s'] for r in runs) / 60:.1f} | {_coverage(runs)} | "
                         f"{_mean(runs, 'in_domain')} | {target if model == MODELS[0] else ''} |")
    return "\n".join(lines)


def load_results(directory: Path) -> dict:
    """Every stored run: one file per task (``molecules-<task>.json``, here or in a folder below it, as separate
    processes keep them) plus the single file of older runs."""
    results: dict = {}
    for path in sorted(directory.glob("**/molecules*.json")):
        results.update(json.loads(path.read_text()))
    return results


def budget_note(results: dict) -> str:
    over_cpu, over_wall = [], []
    for key, run in results.items():
        if key.split("|")[1] != MODELS[0]:
            continue
        limit = 60 * LIMITS.get(key.split("|")[0], 10)
        if run["cpu_s"] > limit:
            over_cpu.append(f"{key} ({run['cpu_s'] / 60:.1f} CPU min)")
        if run["wall_s"] > limit:
            over_wall.append(f"{key} ({run['wall_s'] / 60:.1f} wall min)")
    lines = ["Budget per MedAI run: 10 min (Tox21 30 min). " + (
        "Over it in CPU time: " + ", ".join(over_cpu) if over_cpu else "Every MedAI run within it in CPU time.")]
    if over_wall:
        lines.append("Over it in wall time (the machine is shared, so wall time also counts others' load): "
                     + ", ".join(over_wall))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="bbbp,bace,esol,tox21,tox21-scaffold")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--no-chemprop", action="store_true")
    parser.add_argument("--chemprop-epochs", type=int, default=50, help="chemprop's maximum epochs (default 50)")
    parser.add_argument("--models", default=",".join(MODELS), help="which of: " + ", ".join(MODELS))
    parser.add_argument("--table-only", action="store_true", help="print and write the table of stored results")
    parser.add_argument("--no-readme", action="store_true", help="print the table without writing README")
    parser.add_argument("--results", default=os.environ.get("MEDAI_BENCH_DIR", "benchmarks/.results"))
    args = parser.parse_args()
    names = [n for n in args.tasks.split(",") if n]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose among {', '.join(RUNS)}")
    chosen = [m.strip() for m in args.models.split(",")]
    models = [m for m in MODELS if m in chosen and not (args.no_chemprop and m == "peer chemprop")]
    directory = Path(args.results)
    directory.mkdir(parents=True, exist_ok=True)
    for name in [] if args.table_only else names:
        store = directory / f"molecules-{name}.json"
        for seed in [int(s) for s in args.seeds.split(",")]:
            for model in models:
                key = f"{name}|{model}|{seed}"
                results = json.loads(store.read_text()) if store.exists() else {}
                if key in results:
                    continue
                r = run_one(name, seed, model, args.chemprop_epochs)
                results = json.loads(store.read_text()) if store.exists() else {}  # another process may have added
                results[key] = r
                store.write_text(json.dumps(results, indent=1))
                print(f"{key}: {r['metric']} {r['value']:.4f}  cpu {r['cpu_s'] / 60:.1f} min  wall "
                      f"{r['wall_s'] / 60:.1f} min  {r.get('learner', '')}", flush=True)
    results = load_results(directory)
    markdown = table(results, names, list(MODELS)) + "\n\n" + budget_note(results)
    print(markdown)
    if not args.no_readme:
        print("README updated" if update_readme("molecules", markdown) else "README has no results:molecules markers")


if __name__ == "__main__":
    main()
