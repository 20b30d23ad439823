"""A Task says what is predicted from what: dataset, target, kind, split protocol and default metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("binary", "multiclass", "multilabel", "regression", "survival", "treatment-effect")
MODALITIES = ("tabular", "imaging", "text", "molecules", "sequences", "ehr")

BINARY_METRICS = ("auroc", "auprc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "brier", "ece")
MULTICLASS_METRICS = ("auroc_macro", "auroc_micro", "accuracy", "f1_macro", "f1_micro", "sensitivity_macro")


@dataclass(frozen=True)
class SplitProtocol:
    """How records are divided: a fixed official split, or a stratified random split, plus optional CV."""

    kind: str = "stratified"  # "stratified" (random, per seed) or "official" (given by the dataset)
    val_size: float = 0.2
    test_size: float = 0.2
    cv: str | None = None  # e.g. "5x5": repeated stratified k-fold on all labelled records

    def describe(self) -> str:
        if self.kind == "official":
            text = "official train/validation/test split of the dataset"
        else:
            train = 1 - self.val_size - self.test_size
            text = (f"stratified random split {train:.0%}/{self.val_size:.0%}/{self.test_size:.0%} "
                    "train/validation/test")
        if self.cv:
            text += f"; repeated stratified cross-validation {self.cv} (folds x repeats) on all records"
        return text


@dataclass(frozen=True)
class Task:
    name: str
    modality: str
    kind: str
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
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.modality not in MODALITIES:
            raise ValueError(f"task {self.name!r}: modality {self.modality!r} is not one of {MODALITIES}")

    @property
    def metrics(self) -> tuple[str, ...]:
        return BINARY_METRICS if self.kind == "binary" else MULTICLASS_METRICS

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = list(self.metrics)
        return data
