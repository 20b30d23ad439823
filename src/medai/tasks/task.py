"""A Task says what is predicted from what: dataset, target, kind, split protocol and default metrics."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from medai.tasks.kinds import KINDS

HEADLINE_METRICS = {"binary": "auroc", "multiclass": "auroc_macro", "multilabel": "auroc_macro", "regression": "rmse",
                    "entities": "f1", "survival": "c_index", "treatment-effect": "ate"}


@dataclass(frozen=True)
class SplitProtocol:
    """How records are divided: a fixed official split, or a stratified random split, plus optional CV."""

    kind: str = "stratified"  # "stratified" (random, per seed) or "official" (given by the dataset)
    val_size: float = 0.2
    test_size: float = 0.2
    cv: str | None = None  # e.g. "5x5": repeated stratified k-fold on all labelled records

    def describe(self, stratified: bool = True, group_column: str | None = None) -> str:
        if self.kind == "official":
            text = "official train/validation/test split of the dataset"
        else:
            train = 1 - self.val_size - self.test_size
            text = (f"{'stratified ' if stratified else ''}random split {train:.0%}/{self.val_size:.0%}/"
                    f"{self.test_size:.0%} train/validation/test")
            if group_column:
                text += f", all records of one {group_column} on the same side"
        if self.cv and str(self.cv).strip().lower() in ("loo", "leave-one-out", "leaveoneout"):
            text += "; leave-one-out cross-validation on all records (metrics on the pooled scores)"
        elif self.cv:
            text += (f"; repeated {'stratified ' if stratified else ''}cross-validation {self.cv} (folds x repeats) "
                     "on all records")
        return text


@dataclass(frozen=True)
class Task:
    name: str
    modality: str
    kind: str  # a kind of target, or "auto": inferred from the data
    dataset: str
    target: str
    description: str
    positive_label: str | None = None
    categorical: tuple[str, ...] = ()
    subgroups: tuple[str, ...] = ()
    split: SplitProtocol = field(default_factory=SplitProtocol)
    default_learner: str = "auto"
    intended_use: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in (*KINDS, "auto"):
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", self.modality):
            raise ValueError(f"task {self.name!r}: modality {self.modality!r} is not a modality name")

    @property
    def headline_metric(self) -> str | None:
        return HEADLINE_METRICS.get(self.kind)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
