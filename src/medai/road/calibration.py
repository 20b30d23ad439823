"""Which validation records calibrate the conformal sets/intervals.

A learner that watches the validation records while it trains (early stopping, keeping its best epoch) has chosen
its weights on them: its scores there are optimistic, and conformal sets calibrated on them are too small on new
records. For such a learner the road holds out part of the validation split - seeded, stratified by the
evaluator's strata (grouped by patient when the data have groups) - as the *calibration* records: the learner
watches only the rest (``stop``), and the conformal calibrator sees only the held-out part. The decision rule is
still chosen on the whole validation split. A learner that does not watch validation data is calibrated on all
of it, as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.evaluation.conformal import enough_records

CALIBRATION_FRACTION = 0.5  # of the validation records, held out from early stopping when the learner watches them


def watches_validation(learner) -> bool:
    """Whether fitting ``learner`` looks at the validation records (early stopping, best-epoch selection)."""
    return bool(getattr(learner, "watches_validation", False))


def calibration_split(val: np.ndarray, strata, groups, seed: int, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    """``(stop, cal)``: validation positions the learner may watch, and the held-out calibration positions.

    ``val`` are positions in the whole data set; ``strata``/``groups`` are indexed like ``val``. Returns
    ``(val, val)`` - no hold-out - when the held-out part would be too small to calibrate at ``coverage`` or
    the watched part would lose a class.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    val = np.asarray(val)
    strata = np.asarray(strata)
    order = np.arange(len(val))
    try:
        if groups is not None:
            splitter = GroupShuffleSplit(n_splits=1, test_size=CALIBRATION_FRACTION, random_state=seed)
            stop, cal = next(splitter.split(order, groups=np.asarray(groups)))
        else:
            single = len(np.unique(strata)) < 2
            stop, cal = train_test_split(order, test_size=CALIBRATION_FRACTION, random_state=seed,
                                         stratify=None if single else strata)
    except ValueError:  # a stratum too small to split
        return val, val
    if not enough_records(len(cal), coverage) or len(np.unique(strata[stop])) < len(np.unique(strata)):
        return val, val
    return val[np.sort(stop)], val[np.sort(cal)]


def describe(parts: dict[str, Any]) -> str:
    if len(parts["cal"]) == len(parts["val"]):
        return "calibrated on the validation records"
    return (f"calibrated on {len(parts['cal'])} validation records held out from early stopping (which watched the "
            f"other {len(parts['stop'])})")
