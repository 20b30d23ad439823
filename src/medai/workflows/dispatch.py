"""Routes CLI commands to the workflow of a modality other than tabular."""

from __future__ import annotations

from medai.errors import MedAIError


def train_other_modality(task, arguments: dict) -> None:
    raise MedAIError(f"task {task.name!r} is a {task.modality} task, which this installation cannot train yet")


def predict_other_family(model, input_path, output) -> None:
    raise MedAIError(f"models of family {model.family!r} cannot predict from the command line yet")


def explain_other_family(model, input_path, output) -> None:
    raise MedAIError(f"models of family {model.family!r} cannot be explained from the command line yet")
