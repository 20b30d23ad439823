"""The built-in task catalog. A new modality registers its tasks here."""

from __future__ import annotations

from medai.errors import NotFoundError
from medai.tasks.task import SplitProtocol, Task

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise NotFoundError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}") from None


def list_tasks() -> list[Task]:
    return [_TASKS[name] for name in sorted(_TASKS)]


register_task(Task(
    name="breast-cancer-wdbc",
    modality="tabular",
    kind="binary",
    dataset="breast-cancer-wdbc",
    target="diagnosis",
    positive_label="malignant",
    description="Malignant vs benign breast mass from fine-needle aspirate cytology features",
    intended_use="Decision support for cytopathologists reading breast FNA; not a stand-alone diagnosis.",
    default_learner="logistic",
))

register_task(Task(
    name="heart-disease-cleveland",
    modality="tabular",
    kind="binary",
    dataset="heart-disease-cleveland",
    target="heart_disease",
    positive_label="yes",
    categorical=("cp", "restecg", "slope", "thal"),
    subgroups=("sex", "age"),
    description="Angiographic coronary artery disease (>50% narrowing, num > 0) from 13 clinical features",
    intended_use="Pre-test risk of coronary artery disease in adults referred for angiography.",
    split=SplitProtocol(cv="5x5"),
    default_learner="logistic",
))

register_task(Task(
    name="diabetes-pima",
    modality="tabular",
    kind="binary",
    dataset="diabetes-pima",
    target="diabetes",
    positive_label="yes",
    subgroups=("age",),
    description="Diabetes onset within five years from eight measurements (Pima women, age >= 21)",
    intended_use="Screening-risk estimate for type 2 diabetes in adult Pima women; other populations untested.",
    split=SplitProtocol(cv="5x5"),
    default_learner="logistic",
))
