"""Search spaces of learners, declared once and used by ``medai tune`` (Ray Tune in :mod:`medai.scale.tune`).

A learner declares what may be tuned as its ``search_space``: a dict (class attribute) or a method returning
one, from hyper-parameter name to :class:`Float`, :class:`Int` or :class:`Choice`. A tuned configuration is
applied with :func:`with_hyperparameters`: the learner's own ``with_hyperparameters(config)`` when it has one,
else ``clone(learner).set_params(**config)`` (scikit-learn conventions). Any modality's learner can add a
space; nothing here knows a modality.

Learners that train in epochs may call :func:`report_progress` after each one; while tuning, that reports the
validation score to the scheduler (which may stop a poor trial early), and it does nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from medai.errors import MedAIError


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g}" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class Int:
    low: int
    high: int  # inclusive
    log: bool = False

    def describe(self) -> str:
        return f"{self.low}..{self.high}" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]

    def describe(self) -> str:
        return " | ".join(map(str, self.values))


Dimension = Float | Int | Choice


def search_space(learner, name: str = "") -> dict[str, Dimension]:
    """The learner's declared search space, checked; a clear error when it declares none."""
    space = getattr(learner, "search_space", None)
    space = space() if callable(space) else space
    label = name or type(learner).__name__
    if not space:
        raise MedAIError(f"learner {label!r} declares no search space to tune (a learner adds one as its "
                         "`search_space`; see medai.tuning)")
    for key, dim in space.items():
        if not isinstance(dim, Float | Int | Choice):
            raise MedAIError(f"search space of {label!r}: {key!r} must be Float, Int or Choice, got {dim!r}")
        if isinstance(dim, Float | Int) and not dim.low < dim.high:
            raise MedAIError(f"search space of {label!r}: {key!r} needs low < high, got {dim.describe()}")
        if isinstance(dim, Float | Int) and dim.log and dim.low <= 0:
            raise MedAIError(f"search space of {label!r}: {key!r} on a log scale needs low > 0")
        if isinstance(dim, Choice) and not dim.values:
            raise MedAIError(f"search space of {label!r}: {key!r} offers no choices")
    return dict(space)


def with_hyperparameters(learner, config: dict[str, Any]):
    """An unfitted copy of ``learner`` with ``config`` applied."""
    if not config:
        return learner
    hook = getattr(learner, "with_hyperparameters", None)
    if callable(hook):
        return hook(dict(config))
    from sklearn.base import clone

    try:
        return clone(learner).set_params(**config)
    except ValueError as exc:
        raise MedAIError(f"cannot set {sorted(config)} on {type(learner).__name__}: {exc}") from None


def defaults(learner, space: dict[str, Dimension]) -> dict[str, Any]:
    """The learner's current values of the space's hyper-parameters (its defaults), where it reports them."""
    hook = getattr(learner, "current_hyperparameters", None)
    params = hook() if callable(hook) else (learner.get_params() if hasattr(learner, "get_params") else {})
    return {key: params[key] for key in space if key in params and params[key] is not None}


_reporter: ContextVar[Callable[[dict[str, float]], None] | None] = ContextVar("medai_tuning_reporter", default=None)


def report_progress(metrics: dict[str, Any]) -> None:
    """Called by iterative learners after each epoch with that epoch's record (e.g. ``val_auroc``)."""
    reporter = _reporter.get()
    if reporter is not None:
        reporter({k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})


@contextmanager
def reporting_to(reporter: Callable[[dict[str, float]], None]) -> Iterator[None]:
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
