"""Summary features over the observation window: per variable the first, last, min, max, mean, sum, count,
least-squares slope (per hour) and hours since the last observation, plus the last value and count of the last
``recent_hours`` (default 12); with :data:`EXTENDED` also the standard deviation, the mean of the last 6 hours, the
extremes of the first and of the last 24 hours (the worst values a severity score would take) and the change of the
last value from the first. A variable never observed gives NaN (and count 0: the missingness mask) - gradient
boosting handles NaN natively.

Computed with polars in one group-by over ``(stay, variable)`` and scattered into a dense matrix, so 100,000 stays
of ~400 observations take seconds; a few stays (the service's streams) in numpy by :mod:`.small`, to the same
numbers.
"""

from __future__ import annotations

import numpy as np

from medai.modalities.longitudinal import small
from medai.modalities.longitudinal.stays import Stays

STATS = ("first", "last", "min", "max", "mean", "sum", "count", "slope", "hours_since_last", "recent_mean",
         "recent_count")
EXTENDED = STATS + ("std", "last6_mean", "first24_min", "first24_max", "last24_min", "last24_max", "change")


def feature_names(variables: tuple[str, ...], stats: tuple[str, ...] = STATS) -> list[str]:
    return [f"{v}:{s}" for v in variables for s in stats] + ["observed_hours", "n_observations"]


def _expressions(recent_hours: float) -> dict:
    import polars as pl

    x, t, h = pl.col("x"), pl.col("t"), pl.col("h")
    n = pl.len().cast(pl.Float64)
    recent = t >= h - recent_hours
    return {
        "first": x.first(), "last": x.last(), "min": x.min(), "max": x.max(), "mean": x.mean(), "sum": x.sum(),
        "count": n,
        "slope": (n * (t * x).sum() - t.sum() * x.sum()) / (n * (t ** 2).sum() - t.sum() ** 2),
        "hours_since_last": h.first() - t.last(),
        "recent_mean": x.filter(recent).mean(), "recent_count": recent.sum().cast(pl.Float64),
        "std": x.std(), "last6_mean": x.filter(t >= h - 6).mean(),
        "first24_min": x.filter(t <= 24).min(), "first24_max": x.filter(t <= 24).max(),
        "last24_min": x.filter(t >= h - 24).min(), "last24_max": x.filter(t >= h - 24).max(),
        "change": x.last() - x.first(),
    }


def summarise(stays: Stays, recent_hours: float = 12.0, stats: tuple[str, ...] = STATS) -> np.ndarray:
    """``(n_stays, n_variables * len(stats) + 2)`` float32 features at each stay's horizon."""
    import polars as pl

    expressions = _expressions(float(recent_hours))
    unknown = [s for s in stats if s not in expressions]
    if unknown:
        raise ValueError(f"unknown summary statistics {unknown}; known: {sorted(expressions)}")
    if len(stays) <= small.SMALL:  # a few stays (the service's streams): the same numbers without polars' threads
        return small.summarise(stays, float(recent_hours), stats)
    k = len(stats)
    out = small.empty_summaries(stays, stats)
    if len(stays.time) == 0:
        return out
    rows = stays.rows()
    frame = pl.DataFrame({"s": rows, "v": stays.var, "t": stays.time.astype(np.float64),
                          "x": stays.value.astype(np.float64), "h": stays.horizon[rows].astype(np.float64)})
    grouped = frame.group_by(["s", "v"]).agg(*(expressions[s].alias(s) for s in stats))
    s = grouped["s"].to_numpy()
    v = grouped["v"].to_numpy().astype(np.int64)
    for j, stat in enumerate(stats):
        values = grouped[stat].to_numpy().astype(np.float32)
        out[s, v * k + j] = np.where(np.isfinite(values), values, np.nan)
    return out
