"""The statistics of drift: population stability index, two-sample Kolmogorov-Smirnov and chi-squared tests on
binned summaries, Benjamini-Hochberg control of the false discovery rate, and a kernel maximum mean discrepancy
(MMD) permutation test for embeddings.

Served records are never kept: a window of them is known only by its counts in the reference's bins (numeric
columns: the reference's percentiles; categorical columns: its categories), so every test here works on counts.
The KS statistic is the largest gap between the two empirical CDFs at the reference's percentiles (a lower bound
of the exact statistic, equal to it when the values are binned); its p-value is the two-sample asymptotic one
scipy uses (``kstwo`` at the effective size ``n m / (n + m)``).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

PSI_EPS = 1e-4  # floor on a bin's share, so an empty bin gives a large but finite PSI


def psi(reference: np.ndarray, window: np.ndarray) -> float:
    """Population stability index between two count vectors over the same bins:
    ``sum((w - r) * ln(w / r))`` of the shares. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major."""
    r = _shares(reference)
    w = _shares(window)
    return float(np.sum((w - r) * np.log(w / r)))


def _shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    shares = counts / total if total > 0 else np.full(len(counts), 1.0 / max(len(counts), 1))
    shares = np.maximum(shares, PSI_EPS)
    return shares / shares.sum()


def coarse_bins(reference_counts: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Group fine bins into about ``n_bins`` bins of equal reference mass: an index (coarse bin) per fine bin.
    PSI is conventionally computed on deciles; the fine bins are the reference's percentiles."""
    counts = np.asarray(reference_counts, dtype=float)
    cum = np.cumsum(counts) / max(counts.sum(), 1.0)
    groups = np.minimum((cum * n_bins - 1e-9).astype(int), n_bins - 1)
    groups = np.maximum(groups, 0)
    _, dense = np.unique(groups, return_inverse=True)  # no empty coarse bins
    return dense


def regroup(counts: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return np.bincount(groups, weights=np.asarray(counts, dtype=float), minlength=int(groups.max()) + 1)


def ks_binned(reference_counts: np.ndarray, window_counts: np.ndarray) -> tuple[float, float]:
    """Two-sample KS on counts over the same ordered bins: ``(statistic, p-value)``."""
    r = np.asarray(reference_counts, dtype=float)
    w = np.asarray(window_counts, dtype=float)
    n, m = r.sum(), w.sum()
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    d = float(np.max(np.abs(np.cumsum(r) / n - np.cumsum(w) / m)))
    en = int(round(n * m / (n + m)))
    return d, float(stats.kstwo.sf(d, max(en, 1)))


def chi2_counts(reference_counts: np.ndarray, window_counts: np.ndarray) -> tuple[float, float]:
    """Chi-squared test of homogeneity (reference vs window) on counts over the same categories."""
    table = np.vstack([np.asarray(reference_counts, dtype=float), np.asarray(window_counts, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[1].sum() == 0 or table[0].sum() == 0:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def benjamini_hochberg(p_values: list[float]) -> np.ndarray:
    """BH-adjusted p-values (scipy's ``false_discovery_control``); NaN stays NaN. Rejecting where the adjusted
    value is below ``q`` keeps the expected share of false alarms among the alarms of one window below ``q``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def median_bandwidth(Z: np.ndarray) -> float:
    """The median pairwise Euclidean distance of ``Z`` (the usual bandwidth of a Gaussian kernel)."""
    Z = np.asarray(Z, dtype=float)
    sq = np.sum(Z * Z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0.0)
    upper = d2[np.triu_indices(len(Z), k=1)]
    value = float(np.sqrt(np.median(upper))) if len(upper) else 1.0
    return value if value > 0 else 1.0


def mmd_test(reference: np.ndarray, window: np.ndarray, bandwidth: float, *, permutations: int = 200,
             seed: int = 0) -> tuple[float, float]:
    """Gaussian-kernel MMD² (unbiased) between two samples and its permutation p-value ``(1 + #{perm >= obs}) /
    (1 + permutations)``."""
    X = np.asarray(reference, dtype=float)
    Y = np.asarray(window, dtype=float)
    n, m = len(X), len(Y)
    if n < 2 or m < 2:
        return float("nan"), float("nan")
    Z = np.vstack([X, Y])
    sq = np.sum(Z * Z, axis=1)
    K = np.exp(-np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0.0) / (2 * bandwidth**2))
    np.fill_diagonal(K, 0.0)

    rng = np.random.default_rng(seed)
    labels = np.zeros(n + m)
    labels[:n] = 1.0
    # column 0: the observed split; then one column per permutation (all statistics in one matrix product)
    A = np.column_stack([labels] + [rng.permutation(labels) for _ in range(permutations)])
    B = 1.0 - A
    KA, KB = K @ A, K @ B
    kxx = np.sum(A * KA, axis=0) / (n * (n - 1))
    kyy = np.sum(B * KB, axis=0) / (m * (m - 1))
    kxy = np.sum(B * KA, axis=0) / (n * m)
    values = kxx + kyy - 2 * kxy
    observed = float(values[0])
    exceed = int(np.sum(values[1:] >= observed - 1e-12))
    return observed, float((1 + exceed) / (1 + permutations))


def proportion_ci(successes: int, n: int, level: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion (scipy's ``binomtest``)."""
    if n <= 0:
        return None, None
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)
