"""Stays: irregular multivariate time series, one per ICU stay (or patient), in a compact columnar form.

Observations are held sorted by stay then time in flat numpy arrays (compressed-row layout): ``time`` (hours since
the stay's index time), ``var`` (index into ``variables``) and ``value``; ``offsets[i]:offsets[i+1]`` are stay
``i``'s observations. ``horizon[i]`` is the hour at which stay ``i`` is scored (the end of its observation window,
or the hour of data seen so far when a stay is replayed). The road selects stays by position with
:meth:`Stays.take`; :meth:`Stays.until` cuts every stay at an hour, which is how a model scores a stay at any hour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Stays:
    ids: np.ndarray  # (n,) stay identifiers, as strings
    offsets: np.ndarray  # (n + 1,) int64
    time: np.ndarray  # (m,) float32 hours since the index time
    var: np.ndarray  # (m,) int32 index into variables
    value: np.ndarray  # (m,) float32
    variables: tuple[str, ...]
    horizon: np.ndarray  # (n,) float32 hour at which each stay is scored

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def rows(self) -> np.ndarray:
        """The stay position of every observation."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def take(self, positions) -> Stays:
        positions = np.asarray(positions, dtype=np.int64)
        starts, lengths = self.offsets[positions], self.lengths[positions]
        index = _ranges(starts, lengths)
        return Stays(self.ids[positions], np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                     self.time[index], self.var[index], self.value[index], self.variables, self.horizon[positions])

    def until(self, hours: float | np.ndarray) -> Stays:
        """Every stay as it was at ``hours`` (a number, or one per stay): later observations dropped, scored then."""
        limit = np.broadcast_to(np.asarray(hours, dtype=np.float32), (len(self),))
        horizon = np.minimum(self.horizon, limit)
        keep = self.time <= np.repeat(horizon, self.lengths)
        counts = np.bincount(self.rows()[keep], minlength=len(self))
        return Stays(self.ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), self.time[keep],
                     self.var[keep], self.value[keep], self.variables, horizon.astype(np.float32))

    def with_variables(self, variables: tuple[str, ...]) -> tuple[Stays, list[str]]:
        """The same stays coded against another vocabulary (a model's): unknown variables are dropped and named."""
        lookup = {name: i for i, name in enumerate(variables)}
        mapping = np.array([lookup.get(name, -1) for name in self.variables], dtype=np.int32)
        unknown = sorted({self.variables[i] for i in np.unique(self.var) if mapping[i] < 0}) if len(self.var) else []
        codes = mapping[self.var] if len(self.var) else self.var
        keep = codes >= 0
        counts = np.bincount(self.rows()[keep], minlength=len(self))
        return Stays(self.ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), self.time[keep],
                     codes[keep], self.value[keep], tuple(variables), self.horizon), unknown

    def to_frame(self) -> pd.DataFrame:
        """Long format: ``stay_id, time, variable, value`` (hours since the index time)."""
        return pd.DataFrame({"stay_id": np.repeat(self.ids, self.lengths), "time": self.time,
                             "variable": np.asarray(self.variables, dtype=object)[self.var] if len(self.var)
                             else np.array([], dtype=object), "value": self.value})

    @classmethod
    def from_long(cls, stay: np.ndarray, time: np.ndarray, variable: np.ndarray, value: np.ndarray,
                  ids: np.ndarray | None = None, horizon: float | np.ndarray | None = None,
                  variables: tuple[str, ...] | None = None) -> Stays:
        """From parallel arrays of long-format rows (any order). ``ids`` fixes the stays and their order (stays
        without rows stay, empty); ``horizon`` defaults to each stay's last observation time."""
        stay = np.asarray(stay).astype(str)
        variable = np.asarray(variable).astype(str)
        if ids is None:
            ids = np.unique(stay)
        ids = np.asarray(ids).astype(str)
        if variables is None:
            variables = tuple(sorted(np.unique(variable).tolist()))
        lookup = {name: i for i, name in enumerate(variables)}
        var = np.array([lookup.get(v, -1) for v in variable], dtype=np.int32) if len(variable) else \
            np.zeros(0, np.int32)
        position = pd.Index(ids).get_indexer(stay)
        keep = (position >= 0) & (var >= 0)
        position, var = position[keep], var[keep]
        time = np.asarray(time, dtype=np.float32)[keep]
        value = np.asarray(value, dtype=np.float32)[keep]
        order = np.lexsort((var, time, position))
        position, time, var, value = position[order], time[order], var[order], value[order]
        counts = np.bincount(position, minlength=len(ids))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if horizon is None:
            last = np.zeros(len(ids), dtype=np.float32)
            has = counts > 0
            last[has] = time[offsets[1:][has] - 1]
            horizon = last
        horizon = np.broadcast_to(np.asarray(horizon, dtype=np.float32), (len(ids),)).copy()
        return cls(ids, offsets, time, var, value, tuple(variables), horizon)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + l)`` for every (start, length) pair, without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    index = np.arange(total, dtype=np.int64) - np.repeat(ends - lengths, lengths)
    return index + np.repeat(starts, lengths)


def concat(parts: list[Stays]) -> Stays:
    """Stays of several sets (same vocabulary) one after another."""
    if not parts:
        raise ValueError("nothing to concatenate")
    variables = parts[0].variables
    if any(p.variables != variables for p in parts):
        raise ValueError("stays coded against different variables; align them first (Stays.with_variables)")
    lengths = np.concatenate([p.lengths for p in parts])
    return Stays(np.concatenate([p.ids for p in parts]), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                 np.concatenate([p.time for p in parts]), np.concatenate([p.var for p in parts]),
                 np.concatenate([p.value for p in parts]), variables, np.concatenate([p.horizon for p in parts]))
