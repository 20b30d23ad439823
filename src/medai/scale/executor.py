"""Independent work as Ray tasks (see :mod:`medai.parallel`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medai.scale.cluster import require_ray


def _call(fn, item):
    return fn(item)


class RayExecutor:
    """Runs ``fn`` on each item as a Ray task; ``fn`` (with what it holds, e.g. the dataset) is put in the object
    store once, not shipped with every task. Failed tasks are retried by Ray (``max_retries``)."""

    name = "ray"

    def __init__(self, max_retries: int = 3):
        ray = require_ray()
        self._remote = ray.remote(max_retries=max_retries, num_cpus=1)(_call)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.name = f"Ray ({self.workers} CPUs)"

    def map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        ray = require_ray()
        if not items:
            return []
        fn_ref = ray.put(fn)
        return ray.get([self._remote.remote(fn_ref, item) for item in items])
