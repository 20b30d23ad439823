"""Tasks: what is predicted from what."""

from medai.tasks.catalog import get_task, list_tasks, register_task
from medai.tasks.task import SplitProtocol, Task

__all__ = ["SplitProtocol", "Task", "get_task", "list_tasks", "register_task"]
