"""The learner protocol and the registry of model families that can be loaded from an artifact.

Learners follow scikit-learn conventions: the constructor only stores hyper-parameters, ``fit`` learns,
fitted state ends in ``_``, and ``predict``/``predict_proba`` take arrays or frames. A *model family*
(tabular, imaging, ...) knows how to load a fitted model from an artifact directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd


@runtime_checkable
class Learner(Protocol):
    def fit(self, X: Any, y: Any) -> Learner: ...

    def predict(self, X: Any) -> np.ndarray: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...

    def get_params(self, deep: bool = True) -> dict[str, Any]: ...


@runtime_checkable
class LoadedModel(Protocol):
    """What the CLI and the service use: a fitted model with its schema, decision rule and metadata."""

    family: str
    meta: dict[str, Any]

    def predict_frame(self, frame: pd.DataFrame, explain: bool = False, top_k: int = 3) -> pd.DataFrame: ...


_FAMILIES: dict[str, Callable[[Path, dict[str, Any]], LoadedModel]] = {}


def register_family(name: str, loader: Callable[[Path, dict[str, Any]], LoadedModel]) -> None:
    _FAMILIES[name] = loader


def family_loader(name: str) -> Callable[[Path, dict[str, Any]], LoadedModel]:
    return _FAMILIES[name]


def known_families() -> list[str]:
    return sorted(_FAMILIES)
