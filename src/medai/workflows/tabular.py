"""Disease risk from tabular records: train with a leakage-free protocol, evaluate, explain, package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from medai.data.registry import get_dataset
from medai.data.splits import cv_splits, duplicate_rows_across, parse_cv, train_val_test_split
from medai.data.tabular import (
    TabularSchema,
    coerce_features,
    data_fingerprint,
    drop_unlabelled,
    encode_target,
    infer_schema,
    read_table,
)
from medai.errors import MedAIError
from medai.evaluation import plots
from medai.evaluation.evaluate import confusion_matrix, evaluate_binary, summarize_cv
from medai.evaluation.metrics import auprc, auroc, expected_calibration_error
from medai.evaluation.report import render_card, render_report
from medai.evaluation.subgroups import find_subgroup_columns, subgroup_table
from medai.evaluation.threshold import ThresholdRule, choose_threshold
from medai.models.artifact import dumps, write_artifact
from medai.models.loading import load_model
from medai.models.tabular import WEIGHTS_FILE, TabularClassifier, TabularModel, save_classifier
from medai.tasks import SplitProtocol, Task, get_task
from medai.workflows.common import library_versions, medai_version, now_iso, progress

CV_METRICS = ("auroc", "auprc", "brier", "ece")


@dataclass
class TrainOptions:
    learner: str | None = None  # None: the task's default
    calibration: str | None = None
    seed: int = 0
    cv: str | None = "task"  # "task": the task's protocol; None/"none": no CV; "5x5"
    threshold: str | None = None  # "youden" (default), "sensitivity:0.9", "fixed:0.5"
    n_boot: int = 1000
    show_progress: bool = True


@dataclass
class TrainResult:
    task: Task
    out: Path
    metrics: dict[str, Any]
    model_json: dict[str, Any]


def custom_task(path: Path, target: str, positive_label: str | None = None) -> Task:
    """An ad-hoc task for a user's own file."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-") or "data"
    return Task(
        name=f"{stem}-{re.sub(r'[^A-Za-z0-9._-]+', '-', target)}"[:100],
        modality="tabular", kind="binary", dataset=str(path), target=target,
        positive_label=positive_label, description=f"Predict {target!r} from the records in {path.name}",
        split=SplitProtocol(), default_learner="auto",
    )


def load_task_frame(task: Task) -> tuple[pd.DataFrame, dict[str, str]]:
    spec = get_dataset(task.dataset)
    return spec.load(), {"dataset": spec.name, "license": spec.license, "citation": spec.citation}


def _cv_section(X: pd.DataFrame, y: np.ndarray, groups, model: TabularClassifier, spec: str, seed: int,
                show_progress: bool) -> dict[str, dict]:
    folds, repeats = parse_cv(spec)
    fold_metrics = []
    splits = cv_splits(y, groups, folds, repeats, seed)
    for train, test in progress(splits, total=len(splits), desc=f"CV {spec}", enabled=show_progress):
        fitted = clone(model).fit(X.iloc[train], y[train])
        p = fitted.predict_proba(X.iloc[test])[:, 1]
        fold_metrics.append({
            "auroc": auroc(y[test], p), "auprc": auprc(y[test], p),
            "brier": float(np.mean((p - y[test]) ** 2)), "ece": expected_calibration_error(y[test], p),
        })
    return summarize_cv(fold_metrics, folds)


def train_tabular(
    frame: pd.DataFrame,
    task: Task,
    out: str | Path,
    options: TrainOptions | None = None,
    *,
    data_info: dict[str, str] | None = None,
    id_column: str | None = None,
    group_column: str | None = None,
) -> TrainResult:
    options = options or TrainOptions()
    out = Path(out)
    data_info = dict(data_info or {"dataset": task.dataset, "license": "user data", "citation": ""})
    notes: list[str] = []
    frame, unlabelled = drop_unlabelled(_check_target_present(frame, task), task.target)
    if unlabelled:
        notes.append(f"{unlabelled} record(s) without a value of {task.target!r} were left out.")
    schema = infer_schema(frame, task.target, id_column=id_column, group_column=group_column,
                          categorical=list(task.categorical), positive_label=task.positive_label,
                          source=data_info["dataset"])
    for column, reason in schema.dropped.items():
        notes.append(f"Column {column!r} was not used: {reason}.")
    X = coerce_features(frame, schema, data_info["dataset"])
    y = encode_target(frame, schema, data_info["dataset"])
    groups = frame[group_column].to_numpy() if group_column else None
    missing_rate = float(X.isna().to_numpy().mean())
    if missing_rate:
        notes.append(f"{missing_rate:.1%} of feature values are missing; imputed inside the training folds.")

    split = train_val_test_split(y, groups, val_size=task.split.val_size, test_size=task.split.test_size,
                                 seed=options.seed)
    learner = options.learner or task.default_learner
    model = TabularClassifier(learner=learner, calibration=options.calibration, seed=options.seed)
    model.fit(X.iloc[split.train], y[split.train])

    rule = ThresholdRule.parse(options.threshold)
    p_val = model.predict_proba(X.iloc[split.val])[:, 1]
    threshold = choose_threshold(y[split.val], p_val, rule)
    p_test = model.predict_proba(X.iloc[split.test])[:, 1]
    y_test = y[split.test]
    test = evaluate_binary(y_test, p_test, threshold, n_boot=options.n_boot, seed=options.seed)

    cv_spec = task.split.cv if options.cv == "task" else options.cv
    cv_spec = cv_spec if parse_cv(cv_spec) else None
    cv = _cv_section(X, y, groups, model, cv_spec, options.seed, options.show_progress) if cv_spec else {}

    test_frame = frame.iloc[split.test].reset_index(drop=True)
    subgroup_columns = find_subgroup_columns(list(frame.columns), task.subgroups)
    subgroups = subgroup_table(test_frame, y_test, p_test, threshold, subgroup_columns, seed=options.seed)

    shap_test = model.shap_values(X.iloc[split.test])
    importance = np.abs(shap_test).mean(axis=0)
    feature_importance = {name: round(float(v), 6) for name, v in zip(schema.feature_names, importance, strict=True)}

    split_info = {
        "protocol": task.split.describe() if not (cv_spec and not task.split.cv) else
        SplitProtocol(val_size=task.split.val_size, test_size=task.split.test_size, cv=cv_spec).describe(),
        "seed": options.seed,
        "group_column": group_column,
        "sizes": split.sizes(),
        "prevalence": {name: round(float(y[idx].mean()), 6) for name, idx in
                       (("train", split.train), ("val", split.val), ("test", split.test))},
        "duplicates": {
            "val_in_train": duplicate_rows_across(X.iloc[split.train], X.iloc[split.val]),
            "test_in_train": duplicate_rows_across(X.iloc[split.train], X.iloc[split.test]),
        },
    }
    decision = {"rule": rule.method, "target": rule.target, "threshold": round(threshold, 6),
                "description": rule.describe()}
    matrix = confusion_matrix(y_test, p_test, threshold)
    metrics = {
        "task": task.name,
        "learner": model.chosen_learner_,
        "split": split_info,
        "decision": decision,
        "test": test,
        "cv": cv,
        "confusion_matrix": {"labels": schema.classes, "matrix": matrix},
        "subgroups": subgroups,
        "feature_importance": feature_importance,
    }
    if model.selection_scores_:
        metrics["auto_selection"] = {k: round(v, 6) for k, v in model.selection_scores_.items()}
    fingerprint = data_fingerprint(frame)
    model_json = {
        "format": "medai-model/1",
        "family": "tabular",
        "name": task.name,
        "task": task.to_json(),
        "learner": model.chosen_learner_,
        "hyperparameters": {**model.get_params(), "estimator": model.pipeline_.named_steps["model"].get_params()},
        "seed": options.seed,
        "input_schema": schema.to_json(),
        "decision": decision,
        "data": {**data_info, "fingerprint": fingerprint, "n_records": len(frame)},
        "metrics": {"test": test, "cv": cv},
        "medai_version": medai_version(),
        "libraries": library_versions(),
        "created_at": now_iso(),
        "weights": WEIGHTS_FILE,
    }
    context = _report_context(task, model_json, metrics, notes, y_test, p_test, threshold, matrix,
                              schema, feature_importance, cv_spec)
    files = {
        "model.json": dumps(_json_safe(model_json)),
        WEIGHTS_FILE: save_classifier(model),
        "metrics.json": dumps(_json_safe(metrics)),
        "report.html": render_report(context).encode(),
        "card.md": render_card(context).encode(),
        **{f"plots/{name}.png": png for name, png in context["plots"].items()},
    }
    write_artifact(out, files)
    return TrainResult(task=task, out=out, metrics=_json_safe(metrics), model_json=model_json)


def _check_target_present(frame: pd.DataFrame, task: Task) -> pd.DataFrame:
    if task.target not in frame.columns:
        raise MedAIError(f"target column {task.target!r} is not in the data; columns are: {list(frame.columns)}")
    return frame


def _report_context(task, model_json, metrics, notes, y_test, p_test, threshold, matrix, schema: TabularSchema,
                    importance, cv_spec) -> dict[str, Any]:
    test = metrics["test"]
    pngs = {
        "roc": plots.roc_png(y_test, p_test, test["auroc"]["value"], threshold),
        "precision_recall": plots.pr_png(y_test, p_test, test["auprc"]["value"]),
        "calibration": plots.calibration_png(y_test, p_test),
        "confusion": plots.confusion_png(matrix, schema.classes),
        "shap_importance": plots.importance_png(list(importance), list(importance.values())),
    }
    return {
        "task": task.to_json(),
        "model": {"name": model_json["name"], "learner": model_json["learner"], "seed": model_json["seed"],
                  "created_at": model_json["created_at"], "medai_version": model_json["medai_version"],
                  "libraries": model_json["libraries"]},
        "data": {**model_json["data"], "notes": notes},
        "split": metrics["split"],
        "decision": metrics["decision"],
        "test": test,
        "cv": metrics["cv"],
        "cv_spec": cv_spec or "",
        "subgroups": metrics["subgroups"],
        "plots": pngs,
        "extra_tables": [],
        "limitations": [
            "Trained on retrospective data from one source; prospective validation has not been done.",
            "Feature contributions (SHAP) explain the model, not the biology: they are associations.",
        ],
    }


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        value = float(value)
        return round(value, 6) if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# -- using a trained model ----------------------------------------------------------------------------

def load_tabular_model(directory: str | Path) -> TabularModel:
    model = load_model(directory)
    if not isinstance(model, TabularModel):
        raise MedAIError(f"{directory} holds a {model.family} model; this command needs a tabular model")
    return model


def evaluate_file(directory: str | Path, data: str | Path, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Metrics (with CIs) of a trained model on a new labelled file, at the model's own threshold."""
    model = load_tabular_model(directory)
    frame = read_table(data)
    if model.schema.target not in frame.columns:
        raise MedAIError(f"{data} has no target column {model.schema.target!r} to evaluate against")
    frame, unlabelled = drop_unlabelled(frame, model.schema.target)
    y = encode_target(frame, model.schema, str(data))
    if len(np.unique(y)) < 2:
        raise MedAIError(f"{data} has only one class of {model.schema.target!r}; evaluation needs both")
    p = model.predict_proba(frame, str(data))
    return {
        "model": model.meta["name"],
        "data": str(data),
        "n": int(len(y)),
        "unlabelled_dropped": unlabelled,
        "threshold": model.threshold,
        "test": _json_safe(evaluate_binary(y, p, model.threshold, n_boot=n_boot, seed=seed)),
        "confusion_matrix": {"labels": model.schema.classes, "matrix": confusion_matrix(y, p, model.threshold)},
    }


def predict_file(directory: str | Path, data: str | Path, output: str | Path | None, top_k: int = 3,
                 explain: bool = True) -> pd.DataFrame:
    model = load_tabular_model(directory)
    frame = read_table(data)
    result = model.predict_frame(frame, explain=explain, top_k=top_k, source=str(data))
    if output is not None:
        from medai.fsutil import atomic_write_text

        atomic_write_text(output, result.to_csv(index=False))
    return result


def explain_file(directory: str | Path, data: str | Path, top_k: int = 5) -> list[dict[str, Any]]:
    model = load_tabular_model(directory)
    frame = read_table(data)
    p = model.predict_proba(frame, str(data))
    contributions = model.contributions(frame, top_k, str(data))
    id_column = model.schema.id_column
    return [
        {"row": i + 1, "id": (frame[id_column].iloc[i] if id_column in frame.columns else None)
         if id_column else None,
         "probability": float(p[i]), "label": model.schema.positive_label if p[i] >= model.threshold
         else model.schema.classes[0], "contributions": contributions[i]}
        for i in range(len(frame))
    ]


def train_task_by_name(name: str, out: str | Path, options: TrainOptions | None = None) -> TrainResult:
    task = get_task(name)
    if task.modality != "tabular":
        raise MedAIError(f"task {name!r} is a {task.modality} task; use its own trainer")
    frame, info = load_task_frame(task)
    return train_tabular(frame, task, out, options, data_info=info)
