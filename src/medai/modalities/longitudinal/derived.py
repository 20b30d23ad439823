"""Clinically derived variables and the SAPS-I severity score, computed from the observations themselves.

Derived series (added to a stay as variables of their own, so every summary statistic applies to them); each is
made only when its source variables are in the data (PhysioNet 2012 names, see :mod:`ranges`):

- ``SysABP*``, ``DiasABP*``, ``MAP*``: arterial pressure from the invasive line when it was measured at that
  time, else the non-invasive cuff - one series instead of two half-missing ones (made when both are recorded);
- ``PaO2/FiO2``: each arterial PaO2 over the FiO2 in force then (the last one at or before it);
- ``BUN/Creatinine``: at the times both were measured;
- ``ShockIndex``: HR over the merged systolic pressure (``SysABP*``) at the same time.

Values at the same time keep their recorded order (stable sorts and joins), so a stay's derived series do not
depend on which other stays are computed with it.

SAPS-I (Le Gall et al. 1984, the score the 2012 challenge compared entries with): per component the worst points
of the first 24 hours (age, HR, systolic pressure, temperature, respiratory rate or 3 if ventilated, urine output
over 24 h, BUN, haematocrit, WBC, glucose, K, Na, HCO3, GCS) and their total; a component never measured is NaN
(0 in the total), as in the challenge's reference code.
"""

from __future__ import annotations

import numpy as np

from medai.modalities.longitudinal import small
from medai.modalities.longitudinal.stays import Stays

MERGED = (("SysABP*", "SysABP", "NISysABP"), ("DiasABP*", "DiasABP", "NIDiasABP"), ("MAP*", "MAP", "NIMAP"))
RATIOS = (("PaO2/FiO2", "PaO2", "FiO2", True), ("BUN/Creatinine", "BUN", "Creatinine", False),
          ("ShockIndex", "HR", "SysABP*", False))  # (name, numerator, denominator, denominator carried forward)

# SAPS-I: variable -> (bin edges, points per bin); units as in the challenge (BUN and glucose mg/dL)
SAPS = {
    "Age": ([46, 56, 66, 76], [0, 1, 2, 3, 4]),
    "HR": ([40, 55, 70, 110, 140, 180], [4, 3, 2, 0, 2, 3, 4]),
    "SysABP*": ([55, 80, 150, 190], [4, 2, 0, 2, 4]),
    "Temp": ([30, 32, 34, 36, 38.5, 39, 41], [4, 3, 2, 1, 0, 1, 3, 4]),
    "RespRate": ([6, 10, 12, 25, 35, 50], [4, 2, 1, 0, 1, 3, 4]),
    "BUN": ([9.8, 21, 81, 101, 154], [1, 0, 1, 2, 3, 4]),
    "HCT": ([20, 30, 46, 50, 60], [4, 2, 0, 1, 2, 4]),
    "WBC": ([1, 3, 15, 20, 40], [4, 2, 0, 1, 2, 4]),
    "Glucose": ([29, 50, 70, 252, 500, 801], [4, 3, 2, 0, 1, 3, 4]),
    "K": ([2.5, 3, 3.5, 5.5, 6, 7], [4, 2, 1, 0, 1, 3, 4]),
    "Na": ([110, 120, 130, 151, 156, 161, 180], [4, 3, 2, 0, 1, 2, 3, 4]),
    "HCO3": ([5, 10, 20, 30, 40], [4, 3, 1, 0, 1, 3]),
    "GCS": ([4, 7, 10, 13], [4, 3, 2, 1, 0]),
}
URINE_EDGES, URINE_POINTS = [0.2, 0.5, 0.7, 3.5, 5.0], [4, 3, 2, 0, 1, 2]  # litres per 24 h
SAPS_NAMES = tuple(f"SAPS-I:{name}" for name in SAPS) + ("SAPS-I:Urine", "SAPS-I")


def derived_names(variables: tuple[str, ...]) -> tuple[str, ...]:
    """The derived variables that can be made from ``variables`` (in a fixed order)."""
    have = set(variables)
    names = [name for name, a, b in MERGED if a in have and b in have]  # one source alone: no new series
    have |= set(names)
    names += [name for name, a, b, _ in RATIOS if a in have and b in have]
    return tuple(name for name in names if name not in variables)


def with_derived(stays: Stays) -> Stays:
    """``stays`` with the derived variables appended (same stays, order and horizons)."""
    import polars as pl

    names = derived_names(stays.variables)
    if not names:
        return stays
    if len(stays) <= small.SMALL:  # a few stays (the service's streams): the same rows without polars' threads
        return small.with_derived(stays)
    index = {name: i for i, name in enumerate(stays.variables + names)}
    frame = pl.DataFrame({"s": stays.rows(), "t": stays.time.astype(np.float64), "v": stays.var.astype(np.int32),
                          "x": stays.value.astype(np.float64)})

    def series(name: str) -> pl.DataFrame:
        if name in made:
            return made[name]
        if name not in index or index[name] >= len(stays.variables):
            return pl.DataFrame(schema={"s": pl.Int64, "t": pl.Float64, "x": pl.Float64})
        return frame.filter(pl.col("v") == index[name]).select("s", "t", "x")

    made: dict[str, pl.DataFrame] = {}
    for name, invasive, cuff in MERGED:
        if name in names:
            a = series(invasive)
            made[name] = pl.concat([a, series(cuff).join(a.select("s", "t"), on=["s", "t"], how="anti",
                                                           maintain_order="left")]).sort("s", "t", maintain_order=True)
    for name, top, bottom, carried in RATIOS:
        if name not in names:
            continue
        a = series(top).sort("s", "t", maintain_order=True)
        b = series(bottom).sort("s", "t", maintain_order=True).rename({"x": "y"})
        if carried:  # sorted by (s, t): polars cannot check that within groups
            joined = a.join_asof(b, on="t", by="s", strategy="backward", check_sortedness=False)
        else:
            joined = a.join(b, on=["s", "t"], maintain_order="left_right")
        made[name] = joined.filter(pl.col("y").is_not_null() & (pl.col("y") > 0)).select(
            "s", "t", x=pl.col("x") / pl.col("y"))
    extra = pl.concat([made[name].select("s", "t", "x", v=pl.lit(index[name], dtype=pl.Int32)) for name in names])
    stay = np.concatenate([stays.rows(), extra["s"].to_numpy()])
    time = np.concatenate([stays.time, extra["t"].to_numpy().astype(np.float32)])
    var = np.concatenate([stays.var, extra["v"].to_numpy()])
    value = np.concatenate([stays.value, extra["x"].to_numpy().astype(np.float32)])
    order = np.lexsort((var, time, stay))
    counts = np.bincount(stay, minlength=len(stays))
    return Stays(stays.ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), time[order], var[order],
                 value[order], stays.variables + names, stays.horizon)


def saps(stays: Stays, hours: float = 24.0) -> np.ndarray:
    """``(n, len(SAPS_NAMES))``: SAPS-I points per component (worst of the first ``hours``) and the total.
    Expects :func:`with_derived` stays (``SysABP*``); a component without data is NaN."""
    n, rows = len(stays), stays.rows()
    early = stays.time <= hours
    out = np.full((n, len(SAPS_NAMES)), np.nan, dtype=np.float32)

    def observations(name: str):
        if name == "SysABP*" and name not in stays.variables:  # one source of systolic pressure only
            name = next((v for v in ("SysABP", "NISysABP") if v in stays.variables), name)
        if name not in stays.variables:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        pick = early & (stays.var == stays.variables.index(name))
        return rows[pick], stays.value[pick]

    for j, (name, (edges, points)) in enumerate(SAPS.items()):
        r, x = observations(name)
        if len(r):
            worst = np.full(n, -1.0, dtype=np.float32)
            np.maximum.at(worst, r, np.asarray(points, np.float32)[np.digitize(x, edges)])
            out[:, j] = np.where(worst >= 0, worst, np.nan)
    r, x = observations("MechVent")
    ventilated = np.zeros(n, bool)
    ventilated[r[x > 0]] = True
    j = list(SAPS).index("RespRate")
    out[ventilated, j] = 3.0
    r, x = observations("Urine")
    if len(r):
        litres = np.bincount(r, x, minlength=n) / 1000.0
        seen = np.bincount(r, minlength=n) > 0
        out[seen, len(SAPS)] = np.asarray(URINE_POINTS, np.float32)[np.digitize(litres[seen], URINE_EDGES)]
    out[:, -1] = np.nansum(out[:, :-1], axis=1)
    return out
