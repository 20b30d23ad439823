"""The task catalog: what is predicted from what. Each modality registers its built-in tasks at import."""

from __future__ import annotations

from medai.errors import NotFoundError
from medai.tasks.task import Task

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    from medai.modalities import load_modalities

    load_modalities()
    try:
        return _TASKS[name]
    except KeyError:
        raise NotFoundError(f"unknown task {name!r}; known tasks: {', '.join(sorted(_TASKS))}") from None


def list_tasks() -> list[Task]:
    from medai.modalities import load_modalities

    load_modalities()
    return [_TASKS[name] for name in sorted(_TASKS)]
