"""The one road every modality walks: split -> fit -> predict on validation and test -> decision rule ->
evaluate (with CIs) -> conformal calibration -> cross-validation -> subgroups -> explain -> report + card +
plots -> artifact. What differs between modalities comes from the modality plug-in; what differs between
kinds of target comes from the kind's evaluator.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from medai.data.dataset import Dataset, take
from medai.data.splits import cv_splits, parse_cv, train_val_test_split
from medai.errors import MedAIError
from medai.evaluation.conformal import MODES, Conformal, check_coverage, enough_records, fit_difficulty
from medai.evaluation.kinds import evaluator_for
from medai.evaluation.subgroups import subgroup_table
from medai.models.artifact import write_artifact
from medai.parallel import current_executor, fit_learner, parallel_map
from medai.road import calibration, report
from medai.road.common import library_versions, medai_version, now_iso, progress
from medai.road.model import FORMAT, Model, difficulty_sigma
from medai.road.options import TrainOptions
from medai.tasks import SplitProtocol, Task, get_task
from medai.tasks.kinds import infer_target


@dataclass
class TrainResult:
    task: Task
    out: Path
    metrics: dict[str, Any]
    model_json: dict[str, Any]
    model: Model
    parts: dict[str, np.ndarray] | None = None  # record positions: train, val, test; stop and cal (see calibration)


def train_task(name: str, out: str | Path | None = None, options: TrainOptions | None = None) -> TrainResult:
    """Train a built-in task (see ``medai tasks``) with its own data."""
    from medai.modalities import get_modality

    options = options or TrainOptions()
    task = get_task(name)
    modality = get_modality(task.modality)
    return train(task, modality.load_task_data(task, options), out, options, modality)


def train_data(path: str | Path, out: str | Path | None, options: TrainOptions) -> TrainResult:
    """Train on a user's data (``--data``): the modality that claims the path reads it."""
    from medai.modalities import modality_for_data

    path = Path(path)
    modality = modality_for_data(path, options)
    dataset = modality.read_training_data(path, options)
    return train(user_task(path, modality, dataset.target_column), dataset, out, options, modality)


def user_task(path: Path, modality, target: str) -> Task:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("-") or "data"
    suffix = re.sub(r"[^A-Za-z0-9._-]+", "-", target).strip("-")
    return Task(name=f"{stem}-{suffix}"[:100] if suffix else stem[:100], modality=modality.name, kind="auto",
                dataset=str(path), target=target, description=f"Predict {target!r} from {Path(path).name}",
                split=SplitProtocol(), default_learner=modality.default_learner)


def _check_options(options: TrainOptions) -> None:
    if options.conformal not in MODES:
        raise MedAIError(f"--conformal must be one of {', '.join(MODES)}, got {options.conformal!r}")
    if options.conformal != "none":
        check_coverage(options.coverage)
    parse_cv(None if options.cv == "task" else options.cv)


def resolve_target(task: Task, dataset: Dataset, options: TrainOptions):
    """The kind of target, its classes and positive class, as the options, the data and the task say."""
    return infer_target(dataset.y, dataset.target_column, kind=options.kind or dataset.target_kind or (
                        None if task.kind == "auto" else task.kind), fields=dataset.target_fields,
                        positive_label=options.positive_label or task.positive_label,
                        classes=dataset.classes, source=dataset.source,
                        kind_how="set with --kind" if options.kind else f"the kind of task {task.name}",
                        positive_how="named with --positive-label" if options.positive_label else
                        f"named by task {task.name}")


def train(task: Task, dataset: Dataset, out: str | Path | None = None, options: TrainOptions | None = None,
          modality=None) -> TrainResult:
    """Train ``task`` on ``dataset`` and write the artifact to ``out`` (default ``runs/<task name>``)."""
    from medai.modalities import get_modality

    options = options or TrainOptions()
    _check_options(options)
    modality = modality or get_modality(task.modality)
    out, say = Path(out) if out is not None else Path("runs") / task.name, options.say
    target = resolve_target(task, dataset, options)
    say(f"target {target.column!r}: {target.kind} ({target.how})")
    for note in dataset.notes:
        say(note)
    evaluator = evaluator_for(target.kind)
    y_fit = target.encode(dataset.y, dataset.source)  # what the learner takes
    y = evaluator.outcome(y_fit, target)  # what the metrics take
    task = replace(task, kind=target.kind, positive_label=target.positive_label)
    warnings = [*dataset.warnings, *modality.check_data(dataset, target, y)]
    for warning in warnings:
        say(f"warning: {warning}")

    parts = _split(dataset, evaluator.strata(y), evaluator.stratify, task, options)
    conformal_mode = options.conformal if evaluator.supports_conformal else "none"
    if conformal_mode != "none" and not enough_records(len(parts["val"]), options.coverage):
        message = (f"{len(parts['val'])} validation records are too few to calibrate conformal sets at "
                   f"{options.coverage:.0%} coverage")
        if conformal_mode != "auto":
            raise MedAIError(f"{message}; use more data, a lower --coverage, or --conformal none")
        conformal_mode = "none"
        warnings.append(f"{message}: the model gives no prediction sets or intervals")
        say(f"warning: {warnings[-1]}")
    X = {name: take(dataset.X, idx) for name, idx in parts.items()}
    learner_name = options.learner or task.default_learner
    learner = modality.make_learner(learner_name, target, options, task, dataset)
    if options.hyperparameters:
        from medai.tuning import with_hyperparameters

        learner = with_hyperparameters(learner, options.hyperparameters)
        say(f"hyper-parameters set: {options.hyperparameters}")
    held = {"stop": parts["val"], "cal": parts["val"]}  # validation records early stopping watches / calibrating
    if conformal_mode != "none" and calibration.watches_validation(learner):
        groups = None if dataset.groups is None else np.asarray(dataset.groups)[parts["val"]]
        held["stop"], held["cal"] = calibration.calibration_split(
            parts["val"], evaluator.strata(y)[parts["val"]], groups, options.seed, options.coverage)
    X_stop = X["val"] if len(held["stop"]) == len(parts["val"]) else take(dataset.X, held["stop"])
    learner = fit_learner(modality, learner, X["train"], y_fit[parts["train"]], X_stop, y_fit[held["stop"]])
    s_val, s_test = (evaluator.scores(learner, X[name], target) for name in ("val", "test"))
    y_val, y_test = y[parts["val"]], y[parts["test"]]

    rule = options.threshold or task.options.get("threshold")  # a task may name its own default rule
    decision = evaluator.decide(y_val, s_val, target, rule, task.options)
    test = evaluator.evaluate(y_test, s_test, decision, n_boot=options.n_boot, seed=options.seed)
    extra = evaluator.extra_results(y_test, s_test, decision, y_val, s_val, target, rule,
                                    n_boot=options.n_boot, seed=options.seed)
    conformal, conformal_metrics, difficulty = _conformal(modality, learner, X, y_fit, parts, target, s_val, s_test,
                                                          options, conformal_mode, np.isin(parts["val"], held["cal"]))
    if conformal_metrics:
        conformal_metrics["calibration"] = calibration.describe({"val": parts["val"], **held})
    cv_spec = task.split.cv if options.cv == "task" else options.cv
    cv_spec = cv_spec if parse_cv(cv_spec) else None
    cv = _cross_validate(modality, learner, dataset, y_fit, y, evaluator, target, cv_spec, options) if cv_spec else {}
    subgroups = []
    if dataset.subgroup_frame is not None and len(dataset.subgroup_frame.columns):
        subgroups = subgroup_table(dataset.subgroup_frame.iloc[parts["test"]].reset_index(drop=True),
                                   list(dataset.subgroup_frame.columns), evaluator, y_test, s_test, decision,
                                   seed=options.seed)

    described = modality.describe_learner(learner, learner_name)
    split_info = _split_info(dataset, task, parts, y, evaluator, target, options, cv_spec)
    model_json = {
        "format": FORMAT, "modality": modality.name, "family": modality.name, "name": task.name,
        "task": task.to_json(), "target": target.to_json(), "learner": described["name"],
        "hyperparameters": described["hyperparameters"], "seed": options.seed,
        "input_contract": modality.input_contract, "input_schema": dataset.input_schema, "decision": decision,
        "conformal": conformal.to_json() if conformal else None,
        "data": {**dataset.info(), "fingerprint": dataset.fingerprint, "n_records": len(dataset)},
        "metrics": {"test": test, "cv": cv, "conformal": conformal_metrics},
        "medai_version": medai_version(), "libraries": library_versions(), "created_at": now_iso(),
    }
    model = Model(modality, learner, model_json, difficulty)
    extras = _merge_extras(modality.report_extras(model, X["test"], y_fit[parts["test"]]), options.report_extras)
    metrics = {
        "task": task.name, "kind": target.kind, "learner": described["name"], "target": target.to_json(),
        "split": split_info, "decision": decision, "test": test, "cv": cv, "conformal": conformal_metrics,
        "confusion_matrix": evaluator.confusion(y_test, s_test, decision, target), "subgroups": subgroups,
        "warnings": warnings, **extra["metrics"], **extras.get("metrics", {}),
    }
    if described.get("training"):
        metrics["training"] = described["training"]
    pngs = {**evaluator.plots(y_test, s_test, decision, target, test), **report.conformal_plot(conformal_metrics),
            **extras.get("plots", {})}
    context = report.context(task, model_json, metrics, dataset.notes, pngs,
                             [*extra["tables"], *extras.get("tables", [])], extras.get("limitations", []),
                             evaluator, cv_spec)
    files = report.artifact_files(model_json, metrics, modality.save_learner(learner), context, difficulty)
    files.update(_monitoring_reference(modality, learner, dataset, parts, s_val, s_test, target, options))
    write_artifact(out, files)
    if "monitoring.json" in files:
        model.monitoring = json.loads(files["monitoring.json"])
    return TrainResult(task=task, out=out, metrics=report.json_safe(metrics), model_json=model_json, model=model,
                       parts={**parts, **held})


def _merge_extras(extras: dict[str, Any], added: dict[str, Any]) -> dict[str, Any]:
    """The modality's report extras plus those a caller adds (e.g. ``medai tune``'s trial table and plot)."""
    if not added:
        return extras
    out = dict(extras)
    out["plots"] = {**extras.get("plots", {}), **added.get("plots", {})}
    out["metrics"] = {**extras.get("metrics", {}), **added.get("metrics", {})}
    out["tables"] = [*extras.get("tables", []), *added.get("tables", [])]
    out["limitations"] = [*extras.get("limitations", []), *added.get("limitations", [])]
    return out


def split_parts(dataset: Dataset, strata, stratify: bool, task: Task, options: TrainOptions) -> dict[str, np.ndarray]:
    """The road's train/validation/test indices for ``dataset`` (what ``medai tune`` searches on, too)."""
    return _split(dataset, strata, stratify, task, options)


def _monitoring_reference(modality, learner, dataset, parts, s_val, s_test, target, options) -> dict[str, bytes]:
    """The training reference drift is measured against (``monitoring.json``: summaries, never records), for
    every modality and kind; a model without one is still served, only not monitored for drift."""
    from medai.models.artifact import dumps
    from medai.monitoring.reference import REFERENCE_FILE, build_reference

    heldout = np.concatenate([parts["val"], parts["test"]])
    try:
        reference = build_reference(modality, learner, dataset.X, take(dataset.X, heldout),
                                    np.concatenate([s_val, s_test]), target, seed=options.seed)
    except Exception as exc:  # noqa: BLE001 - never costs the user the model
        options.say(f"warning: no monitoring reference ({type(exc).__name__}); drift will not be measured")
        return {}
    return {REFERENCE_FILE: dumps(reference)}


def _split(dataset: Dataset, strata, stratify: bool, task: Task, options: TrainOptions) -> dict[str, np.ndarray]:
    """Train/validation/test positions; ``strata`` are what a stratified split keeps in proportion (the
    evaluator's: class labels, event indicators, treatment arms)."""
    if dataset.official_split is not None:
        parts = {name: np.asarray(dataset.official_split[name]) for name in ("train", "val", "test")}
    else:
        split = train_val_test_split(strata, dataset.groups, val_size=task.split.val_size,
                                     test_size=task.split.test_size, seed=options.seed, stratify=stratify)
        parts = {"train": split.train, "val": split.val, "test": split.test}
    if options.max_train:
        parts["train"] = parts["train"][: options.max_train]
    return parts


def _conformal(modality, learner, X, y_fit, parts, target, s_val, s_test, options, mode, cal):
    """The conformal calibrator fitted on the calibration records (``cal``: a mask over the validation
    records), and its coverage on the test records."""
    if mode == "none":
        return None, {}, None
    sigma_val = sigma_test = difficulty = None
    if target.kind == "regression" and mode in ("auto", "normalized"):
        Z = modality.embed(learner, X["train"])
        if Z is not None:
            residuals = y_fit[parts["train"]] - np.asarray(learner.predict(X["train"]), dtype=float)
            difficulty = fit_difficulty(Z, residuals, options.seed)
            sigma_val, sigma_test = (difficulty_sigma(difficulty, modality.embed(learner, X[name]))
                                     for name in ("val", "test"))
    conformal = Conformal.fit(target.kind, y_fit[parts["val"]][cal], np.asarray(s_val)[cal], coverage=options.coverage,
                              mode=mode, classes=target.classes, positive_index=target.positive_index,
                              sigma=None if sigma_val is None else np.asarray(sigma_val)[cal])
    if conformal.mode != "normalized":
        difficulty = sigma_test = None
    metrics = conformal.evaluate(y_fit[parts["test"]], s_test, positive_index=target.positive_index, sigma=sigma_test,
                                 n_boot=options.n_boot, seed=options.seed)
    options.say(f"conformal {conformal.mode} sets at {conformal.coverage:.0%}: test coverage "
                f"{metrics['coverage']['value']:.3f}")
    return conformal, metrics, difficulty


def _cross_validate(modality, learner, dataset, y_fit, y, evaluator, target, spec, options) -> dict[str, dict]:
    folds, repeats = parse_cv(spec)
    splits = cv_splits(evaluator.strata(y), dataset.groups, folds, repeats, options.seed, stratify=evaluator.stratify)
    if folds == 0:
        return _leave_one_out(modality, learner, dataset, y_fit, y, evaluator, target, splits, options)
    fold = _CVFold(modality, clone(learner), dataset.X, y_fit, y, evaluator, target)
    if current_executor().workers > 1:  # folds as tasks on a cluster (--ray): same folds, same order
        options.say(f"CV {spec}: {len(splits)} folds on {current_executor().name}")
        fold_metrics = parallel_map(fold, splits)
    else:
        fold_metrics = [fold(split) for split in progress(splits, total=len(splits), desc=f"CV {spec}",
                                                          enabled=options.show_progress)]
    return evaluator.summarize_cv(fold_metrics, folds)


class _CVFold:
    """One cross-validation fold: fit a fresh copy of the learner, score the held-out records."""

    def __init__(self, modality, learner, X, y_fit, y, evaluator, target):
        self.modality, self.learner, self.X, self.y_fit, self.y = modality, learner, X, y_fit, y
        self.evaluator, self.target = evaluator, target

    def __call__(self, split) -> dict[str, float]:
        train_idx, test_idx = split
        fitted = self.modality.fit(clone(self.learner), take(self.X, train_idx), self.y_fit[train_idx])
        scores = self.evaluator.scores(fitted, take(self.X, test_idx), self.target)
        return {**self.evaluator.cv_fold_metrics(self.y[test_idx], scores),
                **self.modality.cv_fold_extras(self.y[test_idx], scores, self.target)}


def _leave_one_out(modality, learner, dataset, y_fit, y, evaluator, target, splits, options) -> dict[str, dict]:
    """Leave-one-out: every record scored by a model that never saw it; the metrics are computed once on the
    pooled scores (one record is too few for a metric), with a bootstrap CI over records."""
    from medai.evaluation.bootstrap import bootstrap_metrics

    pooled = None
    for train_idx, test_idx in progress(splits, total=len(splits), desc="CV leave-one-out",
                                        enabled=options.show_progress):
        fitted = modality.fit(clone(learner), take(dataset.X, train_idx), y_fit[train_idx])
        scores = np.asarray(evaluator.scores(fitted, take(dataset.X, test_idx), target))
        if pooled is None:
            pooled = np.zeros((len(y), *scores.shape[1:]), dtype=float)
        pooled[test_idx] = scores

    def measure(i):
        return {**evaluator.cv_fold_metrics(y[i], pooled[i]), **modality.cv_fold_extras(y[i], pooled[i], target)}

    point = measure(np.arange(len(y)))
    strata = evaluator.strata(y) if np.ndim(y) == 1 else np.zeros(len(y))
    cis = bootstrap_metrics(measure, strata, n_boot=min(options.n_boot, 500), seed=options.seed)
    return {name: {"mean": round(float(value), 6), "std": None, "ci_low": cis[name]["ci_low"],
                   "ci_high": cis[name]["ci_high"], "n_folds": len(splits), "pooled": True}
            for name, value in point.items() if value is not None and np.isfinite(value)}


def _split_info(dataset, task, parts, y, evaluator, target, options, cv_spec) -> dict[str, Any]:
    protocol = SplitProtocol(kind="official" if dataset.official_split is not None else "stratified",
                             val_size=task.split.val_size, test_size=task.split.test_size, cv=cv_spec)
    keys = dataset.record_keys
    duplicates = {"val_in_train": 0, "test_in_train": 0}
    if keys is not None:
        seen = set(keys[parts["train"]].tolist())
        duplicates = {f"{name}_in_train": int(sum(k in seen for k in keys[parts[name]].tolist()))
                      for name in ("val", "test")}
    balance = evaluator.balance(y, parts, target)
    described = protocol.describe(evaluator.stratify, dataset.group_column)
    if dataset.split_protocol:
        described = dataset.split_protocol + (f"; {described.split('; ', 1)[1]}" if cv_spec else "")
    return {"protocol": described, "seed": options.seed,
            "group_column": dataset.group_column, "sizes": {name: int(len(idx)) for name, idx in parts.items()},
            **balance, "balance": evaluator.describe_balance(balance), "duplicates": duplicates}
