"""The report and the artifact's files, for every modality and kind of target from one context."""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.evaluation import plots
from medai.evaluation.report import render_card, render_report
from medai.models.artifact import dumps
from medai.road.model import DIFFICULTY_FILE


def json_safe(value):
    """JSON-able copy: numpy scalars to Python, floats rounded to 6 digits, non-finite floats to null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        value = float(value)
        return round(value, 6) if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def conformal_plot(conformal: dict[str, Any]) -> dict[str, bytes]:
    if not conformal:
        return {}
    groups, values = ["all records"], [conformal["coverage"]["value"]]
    for name, value in (conformal.get("per_class") or {}).items():
        groups.append(f"class {name}")
        values.append(value)
    return {"conformal_coverage": plots.coverage_png(conformal["nominal"], groups, values)}


def context(task, model_json, metrics, notes, pngs, tables, limitations, evaluator, cv_spec) -> dict[str, Any]:
    return {
        "task": task.to_json(),
        "model": {"name": model_json["name"], "learner": model_json["learner"], "seed": model_json["seed"],
                  "created_at": model_json["created_at"], "medai_version": model_json["medai_version"],
                  "libraries": model_json["libraries"], "modality": model_json["modality"]},
        "target": metrics["target"],
        "data": {**model_json["data"], "notes": notes},
        "split": metrics["split"],
        "decision": metrics["decision"],
        "test": metrics["test"],
        "cv": metrics["cv"],
        "cv_spec": cv_spec or "",
        "conformal": metrics["conformal"],
        "confusion": metrics["confusion_matrix"],
        "subgroups": metrics["subgroups"],
        "subgroup_header": [{"key": key, "title": title} for key, title in evaluator.subgroup_header],
        "warnings": metrics["warnings"],
        "plots": pngs,
        "extra_tables": tables,
        "limitations": limitations,
        "headline": evaluator.headline,
    }


def artifact_files(model_json, metrics, weights: dict[str, bytes], context: dict, difficulty) -> dict[str, bytes]:
    from medai.modalities.skops_io import dumps as skops_dumps

    files = {
        "model.json": dumps(json_safe(model_json)),
        **weights,
        "metrics.json": dumps(json_safe(metrics)),
        "report.html": render_report(context).encode(),
        "card.md": render_card(context).encode(),
        **{f"plots/{name}.png": png for name, png in context["plots"].items()},
    }
    if difficulty is not None:
        files[DIFFICULTY_FILE] = skops_dumps(difficulty)
    return files
