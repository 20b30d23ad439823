"""What a modality's reader hands the road: the records, their raw targets and everything the report needs.

``X`` is whatever the modality's learners take (a DataFrame of records, an image array, a list of strings,
...); the road only indexes it by record position with :func:`take`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


def take(X: Any, positions) -> Any:
    """The records at ``positions`` (integer positions) of a DataFrame, array, list or anything with ``take``."""
    positions = np.asarray(positions, dtype=int)
    if isinstance(X, pd.DataFrame | pd.Series):
        return X.iloc[positions]
    if isinstance(X, np.ndarray):
        return X[positions]
    if isinstance(X, list | tuple):
        return [X[i] for i in positions]
    if hasattr(X, "take"):
        return X.take(positions)
    raise TypeError(f"cannot select records from a {type(X).__name__}")


def count(X: Any) -> int:
    return len(X)


@dataclass
class Dataset:
    """Labelled records for training.

    - ``y``: raw target values, one per record (a Series), or a DataFrame of 0/1 columns (one per label) for a
      multilabel target given as several columns; records without a target are already left out.
    - ``input_schema``: what a prediction needs (JSON-able; records models: a list of field specs).
    - ``classes``: class order fixed by the data (e.g. an image data set's label names), else ``None``.
    - ``official_split``: record positions per split (``train``/``val``/``test``) when the data set fixes them,
      or when the modality computes its own split (e.g. by molecular scaffold); ``split_protocol`` then says how.
    - ``record_keys``: one hash per record, to count duplicates across the splits.
    - ``subgroup_frame``: columns to report performance by (sex, age, site ...), aligned with the records.
    - ``notes``/``warnings``: what the reader did (dropped columns, imputed values) and what looks wrong.
    - ``target_kind``/``target_fields``: for a target that spans columns with roles (survival: time and event;
      treatment-effect: treatment and outcome), the kind the reader was asked for and the roles of the columns
      of ``y`` (see :mod:`medai.tasks.composite`).
    """

    X: Any
    y: Any
    target_column: str
    input_schema: Any
    source: str
    license: str = "user data"
    citation: str = ""
    fingerprint: str = ""
    groups: np.ndarray | None = None
    group_column: str | None = None
    official_split: dict[str, np.ndarray] | None = None
    split_protocol: str | None = None
    record_keys: np.ndarray | None = None
    subgroup_frame: pd.DataFrame | None = None
    classes: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # what the reader decided that the learner needs
    target_kind: str | None = None
    target_fields: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return count(self.X)

    def info(self) -> dict[str, str]:
        return {"dataset": self.source, "license": self.license, "citation": self.citation}


@dataclass
class Inputs:
    """Records to predict (and, when labelled, their raw targets): what ``read_inputs`` returns."""

    X: Any
    ids: list[Any] | None = None  # one identifier per record for the output (a file name, an id column)
    id_name: str = "id"
    y: Any = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return count(self.X)
