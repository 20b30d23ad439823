"""Replay a labelled data set through a registered model with an injected shift (``medai monitor simulate``), for
demonstrations, tests and the detection benchmark.

The records are shuffled (seeded) and replayed in batches: the first ``shift_at`` share as they are, the rest with
the shift applied. Every batch goes through the same path as the service (:meth:`Model.predict` with the
monitoring ``observe`` hook, summarised into the monitoring store under the model's registry name); when the data
have labels, the outcomes are then sent as late outcomes joined by record id. The result is the monitoring report.

Shifts (``--shift``, repeatable):

- ``COLUMN*F`` / ``COLUMN+D``: multiply / add to a numeric column (a unit or assay change, a calibration offset);
- ``noise=S``: Gaussian noise of S standard deviations on every numeric column (tables) or on every value (images);
- ``scale=F``: multiply every value of an array input (image brightness, a scanner's gain);
- ``prevalence=P``: resample the shifted part so that a share P of it has the positive class (label shift;
  binary models with labels).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medai.data.dataset import take
from medai.errors import MedAIError

_COLUMN_OP = re.compile(r"^(?P<column>.+?)\s*(?P<op>[*+])\s*(?P<value>[-+0-9.eE]+)$")
_NAMED = re.compile(r"^(?P<name>noise|scale|prevalence)\s*=\s*(?P<value>[-+0-9.eE]+)$")


@dataclass(frozen=True)
class Shift:
    kind: str  # multiply | add | noise | scale | prevalence
    value: float
    column: str | None = None

    def __str__(self) -> str:
        if self.column is not None:
            return f"{self.column}{'*' if self.kind == 'multiply' else '+'}{self.value:g}"
        return f"{self.kind}={self.value:g}"


def parse_shift(text: str) -> Shift:
    text = text.strip()
    named = _NAMED.match(text)
    try:
        if named:
            value = float(named["value"])
            if named["name"] == "prevalence" and not 0 < value < 1:
                raise MedAIError(f"--shift {text!r}: prevalence must lie between 0 and 1")
            return Shift(named["name"], value)
        op = _COLUMN_OP.match(text)
        if op:
            return Shift("multiply" if op["op"] == "*" else "add", float(op["value"]), op["column"].strip())
    except ValueError:
        pass
    raise MedAIError(f"--shift {text!r}: expected COLUMN*FACTOR, COLUMN+DELTA, noise=SD, scale=FACTOR or "
                     "prevalence=SHARE")


def apply_shifts(X: Any, y: Any, shifts: list[Shift], rng: np.random.Generator, target=None) -> tuple[Any, Any]:
    """``X`` (and ``y``, for a label shift) with every shift applied, in order."""
    for shift in shifts:
        if shift.kind == "prevalence":
            X, y = _prevalence(X, y, shift.value, rng, target)
        elif isinstance(X, pd.DataFrame):
            X = _shift_table(X, shift, rng)
        elif isinstance(X, np.ndarray) and shift.kind in ("noise", "scale"):
            X = X * shift.value if shift.kind == "scale" else X + rng.normal(0, shift.value * X.std(), X.shape)
            X = X.astype(np.float32) if X.dtype != np.float32 else X
        else:
            raise MedAIError(f"--shift {shift}: this model's inputs are not a table; use noise=, scale= (arrays) or "
                             "prevalence=")
    return X, y


def _shift_table(X: pd.DataFrame, shift: Shift, rng) -> pd.DataFrame:
    X = X.copy()
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    if shift.kind == "noise":
        for column in numeric:
            sd = float(np.nanstd(X[column].to_numpy(dtype=float)))
            X[column] = X[column] + rng.normal(0, shift.value * (sd or 1.0), len(X))
        return X
    if shift.kind == "scale":
        for column in numeric:
            X[column] = X[column] * shift.value
        return X
    if shift.column not in X.columns:
        raise MedAIError(f"--shift {shift}: no column {shift.column!r}; columns are {list(X.columns)}")
    if shift.column not in numeric:
        raise MedAIError(f"--shift {shift}: column {shift.column!r} is not numeric")
    X[shift.column] = X[shift.column] * shift.value if shift.kind == "multiply" else X[shift.column] + shift.value
    return X


def _prevalence(X, y, share: float, rng, target):
    if y is None or target is None or target.kind != "binary":
        raise MedAIError("--shift prevalence=: needs a binary model and labelled data")
    labels = pd.Series(np.asarray(y, dtype=object)).map(lambda v: str(v)).to_numpy()
    positive = np.flatnonzero(labels == str(target.positive_label))
    if positive.size == 0:
        codes = target.encode(np.asarray(y, dtype=object), "the data")
        positive = np.flatnonzero(codes == target.positive_index)
    negative = np.setdiff1d(np.arange(len(labels)), positive)
    n = len(labels)
    n_pos = int(round(share * n))
    if positive.size == 0 or negative.size == 0:
        raise MedAIError("--shift prevalence=: the data need both classes")
    chosen = np.concatenate([rng.choice(positive, n_pos, replace=n_pos > positive.size),
                             rng.choice(negative, n - n_pos, replace=n - n_pos > negative.size)])
    chosen = rng.permutation(chosen)
    return take(X, chosen), take(np.asarray(y, dtype=object), chosen)


def _plain(value: Any) -> Any:
    """A JSON-able scalar (numpy scalars to Python)."""
    return value.item() if hasattr(value, "item") else value


def simulate(store, name: str, version: int, model, inputs, shifts: list[Shift], *, shift_at: float = 0.5,
             batch: int = 50, outcomes: bool = True, seed: int = 0, run: str = "sim") -> dict[str, Any]:
    """Replay ``inputs`` (see the module docs) and return ``{"replayed", "shifted_from", "outcomes"}``."""
    from medai.monitoring.recorder import Observation, record

    if not 0 <= shift_at <= 1:
        raise MedAIError(f"--shift-at must lie between 0 and 1, got {shift_at}")
    if batch < 1:
        raise MedAIError(f"--batch must be at least 1, got {batch}")
    rng = np.random.default_rng(seed)
    n = len(inputs)
    order = rng.permutation(n)
    cut = int(round(shift_at * n))
    y = None if inputs.y is None else np.asarray(inputs.y, dtype=object)
    before_X, before_y = take(inputs.X, order[:cut]), None if y is None else y[order[:cut]]
    after_X, after_y = take(inputs.X, order[cut:]), None if y is None else y[order[cut:]]
    if shifts and len(order[cut:]):
        after_X, after_y = apply_shifts(after_X, after_y, shifts, rng, model.target)
    ids: list[str] = []
    labels: list[Any] = []
    for part_X, part_y in ((before_X, before_y), (after_X, after_y)):
        m = len(part_X)
        for start in range(0, m, batch):
            idx = np.arange(start, min(start + batch, m))
            X = take(part_X, idx)
            if isinstance(X, pd.DataFrame):
                X = X.reset_index(drop=True)
            batch_ids = [f"{run}-{len(ids) + k}" for k in range(len(idx))]

            def observe(X_, records, s, items, batch_ids=batch_ids):
                record(store, Observation(name, version, model, X_, records, np.asarray(s), items, batch_ids))

            model.predict(X, observe=observe)
            ids += batch_ids
            if part_y is not None:
                labels += [_plain(v) for v in part_y[idx]]
    sent = None
    if outcomes and y is not None:
        sent = store.add_outcomes(name, list(zip(ids, labels, strict=True)))
    return {"replayed": len(ids), "shifted_from": cut, "shifts": [str(s) for s in shifts], "outcomes": sent}
