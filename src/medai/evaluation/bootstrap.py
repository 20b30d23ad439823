"""Percentile bootstrap confidence intervals, stratified (by class, so every resample has every class) or not."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def stratified_resamples(y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` index arrays, each resampling every class with replacement to its own size."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    parts = [np.flatnonzero(y == label) for label in np.unique(y)]
    draws = [rng.choice(part, size=(n_boot, len(part)), replace=True) for part in parts]
    return np.concatenate(draws, axis=1)


def bootstrap_metrics(
    compute: Callable[[np.ndarray], dict[str, float]],
    y: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """``{metric: {"value", "ci_low", "ci_high"}}`` where ``compute(indices)`` evaluates on a subset.

    ``y`` gives the strata each resample keeps in proportion (the class labels); pass one constant value per
    record (e.g. zeros) for a plain, unstratified bootstrap.
    """
    point = compute(np.arange(len(y)))
    samples = {name: [] for name in point}
    for values in _replicates(compute, stratified_resamples(y, n_boot, seed)):
        for name, value in values.items():
            samples[name].append(value)
    alpha = (1 - level) / 2
    out = {}
    for name, value in point.items():
        values = np.asarray(samples[name], dtype=float)
        values = values[np.isfinite(values)]
        low, high = (np.quantile(values, [alpha, 1 - alpha]) if len(values) else (np.nan, np.nan))
        out[name] = {"value": _clean(value), "ci_low": _clean(low), "ci_high": _clean(high)}
    return out


def _clean(value: float) -> float | None:
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


def _replicates(compute: Callable[[np.ndarray], dict[str, float]], resamples: np.ndarray) -> list[dict[str, float]]:
    """``compute`` on every resample, in order: here, or in chunks on the current executor (``--ray``). The
    resamples are drawn before they are handed out, so the numbers are the same either way."""
    from medai.parallel import chunks, current_executor, parallel_map

    executor = current_executor()
    if executor.workers <= 1 or len(resamples) < 2 * executor.workers:
        return [compute(indices) for indices in resamples]
    pieces = chunks(list(resamples), executor.workers)
    return [values for piece in parallel_map(_ComputeAll(compute), pieces) for values in piece]


class _ComputeAll:
    def __init__(self, compute):
        self.compute = compute

    def __call__(self, piece):
        return [self.compute(indices) for indices in piece]
