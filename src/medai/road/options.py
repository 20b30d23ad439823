"""Options of the one road, shared by every modality (a modality's own options travel in ``extra``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _quiet(_message: str) -> None:
    return None


@dataclass
class TrainOptions:
    """How to train. ``None`` means "the task's (or the modality's) default".

    - ``cv``: ``"task"`` (the task's protocol), ``None``/``"none"``, or ``"FOLDSxREPEATS"``.
    - ``threshold``: ``"youden"``, ``"sensitivity:0.9"``, ``"fixed:0.5"`` (binary and multilabel targets).
    - ``coverage``: nominal coverage of the conformal sets/intervals; ``conformal``: ``auto`` (classifiers:
      class-conditional when every class has enough calibration records, else standard; regression: normalized
      when narrower), ``standard``, ``class-conditional``, ``normalized`` or ``none``.
    - ``say``: where the road states what it decided (kind of target, positive class, dropped columns,
      warnings); the CLI prints it.
    """

    learner: str | None = None
    kind: str | None = None
    target: str | None = None
    positive_label: str | None = None
    id_column: str | None = None
    group_column: str | None = None
    modality: str | None = None
    seed: int = 0
    cv: str | None = "task"
    threshold: str | None = None
    coverage: float = 0.9
    conformal: str = "auto"
    n_boot: int = 1000
    max_train: int | None = None  # use only the first N training records (quick runs, tests)
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # applied to the learner (medai tune's best)
    report_extras: dict[str, Any] = field(default_factory=dict)  # tables/plots/metrics a caller adds to the report
    show_progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    say: Callable[[str], None] = _quiet
