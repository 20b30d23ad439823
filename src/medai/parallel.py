"""Where independent pieces of work run: one after another here, or fanned out on a cluster.

The road and the evaluators hand independent work (cross-validation folds, bootstrap replicates, benchmark
seeds) to :func:`parallel_map`. By default it runs them in order in this process; ``medai.scale`` installs an
executor that runs them as Ray tasks (``--ray ADDRESS``). Results come back in the order of the items and
every random draw is made before the work is handed out, so both give the same numbers.

The core never imports Ray: an executor is anything with ``map(fn, items) -> list`` and ``workers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol


class Executor(Protocol):
    name: str
    workers: int  # how many pieces it runs at once (1: in order, here)

    def map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, in the order of ``items``."""


class Sequential:
    name = "sequential"
    workers = 1

    def map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        return [fn(item) for item in items]


SEQUENTIAL = Sequential()
_current: ContextVar[Executor] = ContextVar("medai_executor", default=SEQUENTIAL)


def current_executor() -> Executor:
    return _current.get()


@contextmanager
def using(executor: Executor) -> Iterator[Executor]:
    """Run the independent work started inside the block on ``executor``."""
    token = _current.set(executor)
    try:
        yield executor
    finally:
        _current.reset(token)


def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``[fn(item) for item in items]`` on the current executor (in order; the same results either way)."""
    return current_executor().map(fn, list(items))


def chunks(items: list[Any], n: int) -> list[list[Any]]:
    """``items`` cut into at most ``n`` consecutive, nearly equal pieces (order kept)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for k in range(n):
        stop = start + size + (k < extra)
        out.append(items[start:stop])
        start = stop
    return [c for c in out if c]


class Trainer(Protocol):
    """Fits a learner somewhere else (e.g. data-parallel on a cluster) when it ``supports`` that learner."""

    def supports(self, learner) -> bool: ...

    def fit(self, learner, X, y, X_val=None, y_val=None): ...


_trainer: ContextVar[Trainer | None] = ContextVar("medai_trainer", default=None)


@contextmanager
def training_with(trainer: Trainer) -> Iterator[Trainer]:
    """Inside the block, the road fits learners that ``trainer`` supports with it (others as usual)."""
    token = _trainer.set(trainer)
    try:
        yield trainer
    finally:
        _trainer.reset(token)


def fit_learner(modality, learner, X, y, X_val=None, y_val=None):
    """The road's fit: the current trainer's when it supports the learner, else the modality's."""
    trainer = _trainer.get()
    if trainer is not None and trainer.supports(learner):
        return trainer.fit(learner, X, y, X_val, y_val)
    return modality.fit(learner, X, y, X_val, y_val)
