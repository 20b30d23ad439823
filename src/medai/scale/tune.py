"""Hyper-parameter search with Ray Tune (``medai tune``) over a learner's declared search space.

The search sees only the road's training and validation records (the same split as ``medai train`` with the
same seed); the test records are never scored until the best configuration is trained and packaged through
the normal road, whose report then carries the trial table and a plot. The objective is the kind's headline
metric on the validation records (``val``: learners that train in epochs report every epoch, so ASHA stops a
poor trial early) or its mean over K folds of the training records (``cv``: one report per fold). The learner's
default configuration is always the first trial, so the tuned model is compared with the default on the same
validation score. Without ``--ray`` the same code runs on a private single-machine Ray.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from medai.data.dataset import take
from medai.errors import MedAIError
from medai.road.options import TrainOptions
from medai.scale.cluster import require_ray
from medai.tuning import Choice, Float, Int, defaults, reporting_to, search_space, with_hyperparameters

OBJECTIVES = ("val", "cv")


@dataclass
class TuneOutcome:
    trials: list[dict[str, Any]]
    best: dict[str, Any]
    default_score: float | None
    best_score: float
    metric: str
    train: Any = None  # the road's TrainResult of the best configuration
    notes: list[str] = field(default_factory=list)


def ray_space(space: dict) -> dict:
    from ray import tune

    out = {}
    for key, dim in space.items():
        if isinstance(dim, Float):
            out[key] = tune.loguniform(dim.low, dim.high) if dim.log else tune.uniform(dim.low, dim.high)
        elif isinstance(dim, Int):
            out[key] = tune.lograndint(dim.low, dim.high + 1) if dim.log else tune.randint(dim.low, dim.high + 1)
        elif isinstance(dim, Choice):
            out[key] = tune.choice(list(dim.values))
    return out


@dataclass
class _Search:
    """What every trial needs (shipped to the cluster once)."""

    modality: Any
    learner: Any
    X_train: Any
    y_train: np.ndarray
    X_val: Any
    y_val_fit: np.ndarray
    y_val: np.ndarray
    evaluator: Any
    target: Any
    objective: str
    folds: list[tuple[np.ndarray, np.ndarray]]
    y_train_outcome: np.ndarray


def _sign(evaluator) -> float:
    return 1.0 if evaluator.higher_is_better else -1.0


def _trial(config: dict, search: _Search) -> None:
    from ray import tune

    evaluate(config, search, tune.report)


def evaluate(config: dict, search: _Search, report) -> float:
    """Score one configuration (signed: higher is better), calling ``report`` with each intermediate score."""
    learner = with_hyperparameters(search.learner, config)
    headline, sign = search.evaluator.headline, _sign(search.evaluator)
    if search.objective == "cv":
        scores = []
        for train_idx, test_idx in search.folds:
            fitted = search.modality.fit(with_hyperparameters(search.learner, config),
                                         take(search.X_train, train_idx), search.y_train[train_idx])
            s = search.evaluator.scores(fitted, take(search.X_train, test_idx), search.target)
            scores.append(search.evaluator.cv_fold_metrics(search.y_train_outcome[test_idx], s)[headline])
            report({"score": sign * float(np.nanmean(scores)), "final": len(scores) == len(search.folds)})
        return sign * float(np.nanmean(scores))

    epochs, reported = int(getattr(search.learner, "epochs", 0) or 0), [0]

    def per_epoch(record: dict[str, float]) -> None:
        # at most one report per epoch: the scheduler's budget is epochs + 1 reports, and a report past it (a
        # learner that reports its restored best epoch again) would end the trial before its final score
        if "val_auroc" in record and reported[0] < epochs:
            reported[0] += 1
            report({"score": float(record["val_auroc"]), "final": False})

    with reporting_to(per_epoch):
        fitted = search.modality.fit(learner, search.X_train, search.y_train, search.X_val, search.y_val_fit)
    s = search.evaluator.scores(fitted, search.X_val, search.target)
    score = sign * float(search.evaluator.cv_fold_metrics(search.y_val, s)[headline])
    report({"score": score, "final": True})
    return score


def _prepare(task_name: str | None, data: Path | None, options: TrainOptions):
    from medai.modalities import get_modality, modality_for_data
    from medai.road.train import user_task
    from medai.tasks import get_task

    if (task_name is None) == (data is None):
        raise MedAIError("give either a TASK name or --data FILE --target COLUMN")
    if data is not None:
        modality = modality_for_data(Path(data), options)
        dataset = modality.read_training_data(Path(data), options)
        task = user_task(Path(data), modality, dataset.target_column)
    else:
        task = get_task(task_name)
        modality = get_modality(task.modality)
        dataset = modality.load_task_data(task, options)
    return task, modality, dataset


def tune_and_train(task_name: str | None, data: Path | None, options: TrainOptions, out: Path | None, *,
                   trials: int = 16, objective: str = "val", folds: int = 3, max_concurrent: int | None = None,
                   storage: Path | None = None, say=print) -> TuneOutcome:
    """Search ``trials`` configurations on the connected Ray cluster, then train the best through the road."""
    from medai.data.splits import cv_splits
    from medai.evaluation.kinds import evaluator_for
    from medai.road.train import resolve_target, split_parts, train

    if trials < 1:
        raise MedAIError(f"--trials must be at least 1, got {trials}")
    if objective not in OBJECTIVES:
        raise MedAIError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    task, modality, dataset = _prepare(task_name, data, options)
    target = resolve_target(task, dataset, options)
    evaluator = evaluator_for(target.kind)
    y_fit = target.encode(dataset.y, dataset.source)
    y = evaluator.outcome(y_fit, target)
    task = replace(task, kind=target.kind, positive_label=target.positive_label)
    parts = split_parts(dataset, evaluator.strata(y), evaluator.stratify, task, options)
    learner_name = options.learner or task.default_learner
    learner = modality.make_learner(learner_name, target, options, task, dataset)
    space = search_space(learner, learner_name)
    start = defaults(learner, space)
    say(f"tuning {learner_name} ({modality.name}) over {', '.join(f'{k} {d.describe()}' for k, d in space.items())}:"
        f" {trials} trials, objective {objective} {evaluator.headline}")
    train_idx = parts["train"]
    groups = dataset.groups[train_idx] if dataset.groups is not None else None
    inner = cv_splits(evaluator.strata(y)[train_idx], groups, folds, 1, options.seed,
                      stratify=evaluator.stratify) if objective == "cv" else []
    search = _Search(modality, learner, take(dataset.X, train_idx), y_fit[train_idx], take(dataset.X, parts["val"]),
                     y_fit[parts["val"]], y[parts["val"]], evaluator, target, objective, inner, y[train_idx])
    trials_table, best, default_score, best_score = _run_search(search, space, start, trials, options.seed,
                                                                max_concurrent, storage)
    sign = _sign(evaluator)
    for row in trials_table:  # the metric's own values (the search maximises sign * metric)
        row["value"] = None if row["score"] is None else sign * row["score"]
    say(f"best validation {evaluator.headline} {sign * best_score:.4f} with {best}"
        + (f" (default configuration: {sign * default_score:.4f})" if default_score is not None else ""))
    outcome = TuneOutcome(trials_table, best, None if default_score is None else sign * default_score,
                          sign * best_score, evaluator.headline)
    extras = _report_extras(outcome, learner_name, objective)
    final_options = replace(options, learner=learner_name, hyperparameters=best, report_extras=extras)
    outcome.train = train(task, dataset, out, final_options, modality)
    return outcome


def _run_search(search: _Search, space: dict, start: dict, trials: int, seed: int, max_concurrent: int | None,
                storage: Path | None):
    require_ray()
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if search.objective == "cv":
        max_t = len(search.folds)
    else:
        max_t = int(getattr(search.learner, "epochs", 0) or 0) + 1  # epochs, then the final score
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max(max_t, 1), grace_period=1,
                              reduction_factor=2) if max_t > 1 else None
    searcher = BasicVariantGenerator(points_to_evaluate=[start] if start else None, random_state=seed)
    if max_concurrent:  # BasicVariantGenerator runs as many trials at once as the cluster has CPUs for
        searcher.set_max_concurrency(max_concurrent) if hasattr(searcher, "set_max_concurrency") else None
    storage = Path(storage or tempfile.mkdtemp(prefix="medai-tune-")).resolve()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_trial, search=search), {"cpu": 1}),
        param_space=ray_space(space),
        tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=trials, scheduler=scheduler,
                                    search_alg=searcher),
        run_config=tune.RunConfig(name=f"medai-tune-{int(time.time())}", storage_path=str(storage), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=2)),
    )
    results = tuner.fit()
    rows = []
    for number, result in enumerate(results):
        metrics = result.metrics or {}
        rows.append({"trial": number, "config": {k: result.config.get(k) for k in space},
                     "score": metrics.get("score"), "iterations": metrics.get("training_iteration", 0),
                     "finished": bool(metrics.get("final")), "error": str(result.error).splitlines()[0][:200]
                     if result.error else None})
    rows.sort(key=lambda r: r["trial"])
    complete = [r for r in rows if r["finished"] and r["score"] is not None and math.isfinite(r["score"])]
    if not complete:
        errors = [r["error"] for r in rows if r["error"]]
        raise MedAIError("no tuning trial finished" + (f": {errors[0]}" if errors else ""))
    for row in rows:
        row["early_stopped"] = not row["finished"] and row["error"] is None
        row["default"] = bool(start) and _same(row["config"], start)
    default_row = finish_default(rows, complete, start, lambda: evaluate(start, search, lambda _metrics: None))
    best = max(complete, key=lambda r: r["score"])
    return rows, dict(best["config"]), default_row["score"] if default_row else None, best["score"]


def finish_default(rows: list[dict], complete: list[dict], start: dict, score_default) -> dict | None:
    """The default configuration's row, finished: where the scheduler stopped it early (or it failed), it is
    scored here to the end (``score_default()``) and added to ``complete``, so the tuned model is always
    compared with the default, and is never worse than it on validation."""
    default_row = next((r for r in rows if r.get("default")), None)
    if not start or (default_row is not None and default_row["finished"] and default_row["score"] is not None):
        return default_row
    if default_row is None:
        default_row = {"trial": len(rows), "config": dict(start), "iterations": 0, "error": None,
                       "early_stopped": False, "default": True}
        rows.append(default_row)
    default_row.update(score=score_default(), finished=True, completed_after_search=True)
    complete.append(default_row)
    return default_row


def _same(config: dict, start: dict) -> bool:
    return all(_close(config.get(k), v) for k, v in start.items())


def _close(a, b) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def _report_extras(outcome: TuneOutcome, learner: str, objective: str) -> dict[str, Any]:
    keys = list(outcome.best)
    header = ["trial", *keys, f"validation {outcome.metric}", "iterations", "state"]
    rows = []
    for row in outcome.trials:
        state = "error" if row["error"] else ("stopped early (ASHA)" if row["early_stopped"] else "finished")
        if row["default"]:
            state += ", default"
        if row["finished"] and row["config"] == outcome.best:
            state += ", best"
        rows.append([row["trial"], *(_cell(row["config"].get(k)) for k in keys), row["value"], row["iterations"],
                     state])
    table = {"title": f"Hyper-parameter search ({learner}, {len(outcome.trials)} trials, objective {objective})",
             "note": "Scores on the validation records (or inner CV folds of the training records); the test "
                     "records were not used to choose. ASHA stops trials whose score trails at a rung.",
             "header": header, "rows": rows}
    metrics = {"tuning": {"objective": objective, "metric": outcome.metric, "best": outcome.best,
                          "best_validation_score": outcome.best_score, "default_validation_score":
                          outcome.default_score, "trials": len(outcome.trials),
                          "stopped_early": sum(r["early_stopped"] for r in outcome.trials)}}
    return {"tables": [table], "plots": {"tuning": _plot(outcome)}, "metrics": metrics}


def _cell(value):
    return round(value, 6) if isinstance(value, float) else value


def _plot(outcome: TuneOutcome) -> bytes:
    from medai.evaluation.plots import png_bytes, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.6), dpi=110)
    for row in outcome.trials:
        if row["value"] is None:
            continue
        marker = "o" if row["finished"] else "x"
        color = "tab:green" if row["finished"] and row["config"] == outcome.best else (
            "tab:orange" if row["default"] else ("tab:blue" if row["finished"] else "tab:gray"))
        ax.scatter(row["trial"], row["value"], marker=marker, color=color)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {outcome.metric} (last report)")
    ax.set_title("trials: o finished, x stopped early; green best, orange default", fontsize=8)
    return png_bytes(fig)
