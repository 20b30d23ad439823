"""Train/validation/test splits and repeated cross-validation, stratified (classification) or plain
(regression, multilabel), and (optionally) group-aware.

Group-aware means every record of one patient lands on the same side of every split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    LeaveOneGroupOut,
    LeaveOneOut,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    train_test_split,
)

from medai.errors import MedAIError

LEAVE_ONE_OUT = {"loo", "leave-one-out", "leaveoneout"}

@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _group_holdout(y, groups, fraction: float, seed: int, stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    if not stratify:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(splitter.split(np.zeros(len(y)), groups=groups))
    n_splits = max(2, round(1 / fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    rest, held = next(splitter.split(np.zeros(len(y)), y, groups))
    return rest, held


def train_val_test_split(
    y: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    val_size: float = 0.2,
    test_size: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> SplitIndices:
    """Split record positions into train, validation and test sets (stratified by class unless told not to)."""
    y = np.asarray(y)
    index = np.arange(len(y))
    if stratify:
        counts = np.bincount(y) if y.dtype.kind in "iu" else pd.Series(y).value_counts().to_numpy()
        counts = counts[counts > 0]
        if counts.min() < 3:
            raise MedAIError(
                f"the smallest class has {counts.min()} record(s); a train/validation/test split needs at least 3"
            )
    elif len(y) < 10:
        raise MedAIError(f"{len(y)} records are too few for a train/validation/test split; at least 10 are needed")
    strata = y if stratify else None
    if groups is None:
        rest, test = train_test_split(index, test_size=test_size, stratify=strata, random_state=seed)
        train, val = train_test_split(
            rest, test_size=val_size / (1 - test_size), stratify=None if strata is None else y[rest],
            random_state=seed
        )
    else:
        groups = np.asarray(groups)
        rest, test = _group_holdout(y, groups, test_size, seed, stratify)
        inner_train, inner_val = _group_holdout(y[rest], groups[rest], val_size / (1 - test_size), seed, stratify)
        train, val = rest[inner_train], rest[inner_val]
    return SplitIndices(np.sort(train), np.sort(val), np.sort(test))


def parse_cv(spec: str | None) -> tuple[int, int] | None:
    """``'5x5'`` -> (5 folds, 5 repeats); ``'10'`` -> (10, 1); ``'loo'`` -> (0, 1): leave-one-out (one fold per
    record); ``None``/``'none'`` -> no cross-validation."""
    if spec is None or str(spec).lower() in {"", "none", "0", "off"}:
        return None
    if str(spec).strip().lower() in LEAVE_ONE_OUT:
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(spec))
    if not match:
        raise MedAIError(f"--cv must look like '5x5' (folds x repeats), '10' or 'loo' (leave one out), got {spec!r}")
    folds, repeats = int(match.group(1)), int(match.group(2) or 1)
    if folds < 2 or repeats < 1:
        raise MedAIError(f"--cv needs at least 2 folds and 1 repeat, got {spec!r}")
    return folds, repeats


def cv_splits(
    y: np.ndarray, groups: np.ndarray | None, folds: int, repeats: int, seed: int = 0, stratify: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    y = np.asarray(y)
    if folds == 0:  # leave one out (a group at a time when records are grouped)
        if len(y) < 3:
            raise MedAIError(f"leave-one-out cross-validation needs at least 3 records, got {len(y)}")
        if groups is None:
            return list(LeaveOneOut().split(np.zeros(len(y))))
        return list(LeaveOneGroupOut().split(np.zeros(len(y)), groups=groups))
    if stratify and np.bincount(y).min() < folds:
        raise MedAIError(f"{folds}-fold cross-validation needs at least {folds} records of each class")
    if len(y) < folds * 2:
        raise MedAIError(f"{folds}-fold cross-validation needs at least {2 * folds} records, got {len(y)}")
    if groups is None:
        splitter = (RepeatedStratifiedKFold if stratify else RepeatedKFold)(
            n_splits=folds, n_repeats=repeats, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y if stratify else None))
    out = []
    for repeat in range(repeats):
        if stratify:
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
            out.extend(splitter.split(np.zeros(len(y)), y, groups))
        else:
            splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
            out.extend(splitter.split(np.zeros(len(y)), groups=groups))
    return out


def duplicate_rows_across(reference: pd.DataFrame, other: pd.DataFrame) -> int:
    """How many rows of ``other`` have an exact copy (all feature values) in ``reference``."""
    if reference.empty or other.empty:
        return 0
    ref = set(pd.util.hash_pandas_object(reference.astype(str), index=False).tolist())
    hashes = pd.util.hash_pandas_object(other.astype(str), index=False)
    return int(hashes.isin(ref).sum())
