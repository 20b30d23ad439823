"""Summary features and derived variables of a few stays in plain numpy: the same numbers as the polars code of
:mod:`~medai.modalities.longitudinal.features` and :mod:`~medai.modalities.longitudinal.derived`, for the service's
streams, which score one stay per request.

polars answers each query on its own thread pool: ~55 small queries per stay cost a few ms of CPU but, on a busy
machine, each hand-off to another thread waits to be scheduled, so one stay took hundreds of ms to summarise. Here
everything runs on the caller's thread. Each statistic is computed as polars computes it (float64, rows of a
group in their order, Kahan sums, Welford's standard deviation), then
stored as float32 like the polars path; ``tests/test_longitudinal_stream_state.py`` checks both paths give
identical features on stays with ties, gaps and derived variables (and they were identical on the first 300
stays of PhysioNet set B cut at 1, 3, 6, 12, 24, 36 and 48 h).
"""

from __future__ import annotations

import numpy as np

from medai.modalities.longitudinal.stays import Stays

SMALL = 8  # at most this many stays: the numpy path (polars beyond: columnar and multi-threaded pays off there)


def empty_summaries(stays: Stays, stats: tuple[str, ...]) -> np.ndarray:
    """The summary matrix before any observation is counted: ``stats`` per variable (NaN; counts 0), then the
    horizon and the length of each stay."""
    n, k, V = len(stays), len(stats), len(stays.variables)
    out = np.full((n, V * k + 2), np.nan, dtype=np.float32)
    out[:, V * k] = stays.horizon
    out[:, V * k + 1] = stays.lengths
    counts = [j for j, s in enumerate(stats) if s in ("count", "recent_count")]
    out[:, [v * k + j for v in range(V) for j in counts]] = 0.0
    return out


def summarise(stays: Stays, recent_hours: float, stats: tuple[str, ...]) -> np.ndarray:
    """:func:`medai.modalities.longitudinal.features.summarise` in numpy (same shape, same float32 values)."""
    k, V = len(stats), len(stays.variables)
    out = empty_summaries(stays, stats)
    if len(stays.time) == 0:
        return out
    rows = stays.rows()
    key = rows * V + stays.var.astype(np.int64)
    order = np.argsort(key, kind="stable")  # groups (stay, variable), their rows in the stays' order
    key = key[order]
    t = stays.time[order].astype(np.float64)
    x = stays.value[order].astype(np.float64)
    h = stays.horizon[rows[order]].astype(np.float64)
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    last = np.concatenate([starts[1:], [len(key)]]) - 1
    n_group = (last - starts + 1).astype(np.float64)

    group = np.repeat(np.arange(len(starts)), last - starts + 1)

    recent, last6 = t >= h - float(recent_hours), t >= h - 6
    wanted = {"x": (x, None), "t": (t, None)}  # every sum in one pass over the groups' rows
    if "slope" in stats:
        wanted.update(tx=(t * x, None), tt=(t ** 2, None))
    if "recent_mean" in stats:
        wanted["recent"] = (x, recent)
    if "last6_mean" in stats:
        wanted["last6"] = (x, last6)
    sums = dict(zip(wanted, _kahan(list(wanted.values()), group, len(starts)), strict=True))

    def mean(name: str, mask: np.ndarray) -> np.ndarray:
        size = np.bincount(group[mask], minlength=len(starts)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(size > 0, sums[name] / size, np.nan)

    def extreme(mask: np.ndarray, ufunc) -> np.ndarray:
        fill = np.inf if ufunc is np.minimum else -np.inf
        value = ufunc.reduceat(np.where(mask, x, fill), starts)
        return np.where(np.add.reduceat(mask.astype(np.int64), starts) > 0, value, np.nan)

    sx, st = sums["x"], sums["t"]
    computed: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for stat in stats:
            if stat == "first":
                value = x[starts]
            elif stat == "last":
                value = x[last]
            elif stat == "min":
                value = np.minimum.reduceat(x, starts)
            elif stat == "max":
                value = np.maximum.reduceat(x, starts)
            elif stat == "mean":
                value = sx / n_group
            elif stat == "sum":
                value = sx
            elif stat == "count":
                value = n_group
            elif stat == "slope":
                value = (n_group * sums["tx"] - st * sx) / (n_group * sums["tt"] - st ** 2)
            elif stat == "hours_since_last":
                value = h[starts] - t[last]
            elif stat == "recent_mean":
                value = mean("recent", recent)
            elif stat == "recent_count":
                value = np.bincount(group[recent], minlength=len(starts)).astype(np.float64)
            elif stat == "std":
                value = _welford_std(x, group, len(starts))
            elif stat == "last6_mean":
                value = mean("last6", last6)
            elif stat in ("first24_min", "first24_max", "last24_min", "last24_max"):
                window = t <= 24 if stat.startswith("first") else t >= h - 24
                value = extreme(window, np.minimum if stat.endswith("min") else np.maximum)
            elif stat == "change":
                value = x[last] - x[starts]
            else:
                raise ValueError(f"unknown summary statistic {stat!r}")
            computed[stat] = value
    s, v = key[starts] // V, key[starts] % V
    for j, stat in enumerate(stats):
        values = computed[stat].astype(np.float32)
        out[s, v * k + j] = np.where(np.isfinite(values), values, np.nan)
    return out


def _padded(a: np.ndarray, group: np.ndarray, groups: int, mask: np.ndarray | None):
    """The (selected) values of each group as a row of a ``(groups, longest)`` matrix, and which cells are used."""
    if mask is not None:
        a, group = a[mask], group[mask]
    rank = np.arange(len(group)) - np.searchsorted(group, group, side="left")  # groups are contiguous
    width = int(rank.max()) + 1 if len(rank) else 0
    values = np.zeros((groups, width))
    used = np.zeros((groups, width), dtype=bool)
    values[group, rank] = a
    used[group, rank] = True
    return values, used


def _kahan(columns: list[tuple[np.ndarray, np.ndarray | None]], group: np.ndarray, groups: int
           ) -> list[np.ndarray]:
    """For each ``(values, mask)``, per group the compensated (Kahan) sum of the (masked) values in row order -
    how polars sums floats in a group-by; all of them in one pass."""
    padded = [_padded(a, group, groups, mask) for a, mask in columns]
    width = max(v.shape[1] for v, _ in padded)
    values = np.vstack([np.pad(v, ((0, 0), (0, width - v.shape[1]))) for v, _ in padded])
    used = np.vstack([np.pad(u, ((0, 0), (0, width - u.shape[1]))) for _, u in padded])
    total, compensation = np.zeros(len(values)), np.zeros(len(values))
    for j in range(width):
        y = values[:, j] - compensation
        t = total + y
        compensation = np.where(used[:, j], (t - total) - y, compensation)
        total = np.where(used[:, j], t, total)
    return np.split(total, len(columns))


def _welford_std(x: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the sample standard deviation (ddof 1) by Welford's updates - as polars computes it; NaN for
    a single value."""
    values, used = _padded(x, group, groups, None)
    mean, m2 = np.zeros(groups), np.zeros(groups)
    for j in range(values.shape[1]):
        d = values[:, j] - mean
        moved = mean + d / (j + 1)
        m2 = np.where(used[:, j], m2 + d * (values[:, j] - moved), m2)
        mean = np.where(used[:, j], moved, mean)
    n = used.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, np.sqrt(m2 / (n - 1)), np.nan)


def with_derived(stays: Stays) -> Stays:
    """:func:`medai.modalities.longitudinal.derived.with_derived` in numpy (same rows, same order)."""
    from medai.modalities.longitudinal.derived import MERGED, RATIOS, derived_names

    names = derived_names(stays.variables)
    if not names:
        return stays
    index = {name: i for i, name in enumerate(stays.variables + names)}
    rows = stays.rows()
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64))
    made: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def series(name: str):
        if name in made:
            return made[name]
        if name not in index or index[name] >= len(stays.variables):
            return empty
        pick = stays.var == index[name]
        return rows[pick], stays.time[pick].astype(np.float64), stays.value[pick].astype(np.float64)

    def ordered(s, t, x):
        order = np.lexsort((t, s))
        return s[order], t[order], x[order]

    for name, invasive, cuff in MERGED:
        if name in names:
            a, c = series(invasive), series(cuff)
            taken = set(zip(a[0].tolist(), a[1].tolist(), strict=True))
            alone = np.array([(s, t) not in taken for s, t in zip(c[0].tolist(), c[1].tolist(), strict=True)],
                             dtype=bool)
            made[name] = ordered(*(np.concatenate([p, q[alone]]) for p, q in zip(a, c, strict=True)))
    for name, top, bottom, carried in RATIOS:
        if name not in names:
            continue
        (s, t, x), (bs, bt, by) = ordered(*series(top)), ordered(*series(bottom))
        if carried:  # the bottom's last value at or before each top row (same stay)
            y = np.full(len(s), np.nan)
            for stay in np.unique(s):
                mine, theirs = s == stay, bs == stay
                j = np.searchsorted(bt[theirs], t[mine], side="right") - 1
                y[mine] = np.where(j >= 0, by[theirs][np.maximum(j, 0)], np.nan) if theirs.any() else np.nan
        else:  # the bottom's values at the same time (every pair)
            pairs = [(i, j) for i in range(len(s)) for j in np.flatnonzero((bs == s[i]) & (bt == t[i]))]
            i = np.array([p[0] for p in pairs], dtype=np.int64)
            j = np.array([p[1] for p in pairs], dtype=np.int64)
            s, t, x, y = s[i], t[i], x[i], by[j]
        keep = np.isfinite(y) & (y > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            made[name] = s[keep], t[keep], x[keep] / y[keep]
    extra = [(made[name], index[name]) for name in names]
    stay = np.concatenate([rows, *(m[0] for m, _ in extra)]).astype(np.int64)
    time = np.concatenate([stays.time, *(m[1].astype(np.float32) for m, _ in extra)])
    var = np.concatenate([stays.var, *(np.full(len(m[0]), v, dtype=np.int32) for m, v in extra)])
    value = np.concatenate([stays.value, *(m[2].astype(np.float32) for m, _ in extra)])
    order = np.lexsort((var, time, stay))
    counts = np.bincount(stay, minlength=len(stays))
    return Stays(stays.ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), time[order], var[order],
                 value[order], stays.variables + names, stays.horizon)
