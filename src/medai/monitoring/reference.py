"""The training reference of a model (``monitoring.json`` in its artifact) and the summaries of served batches
that are compared with it.

The road writes the reference for every model, whatever its modality and kind of target
(:func:`build_reference`), from what it already has: the records (features, when the modality's records are a
table), the scores on the held-out records (validation + test: training scores are optimistic), and a numeric
representation of held-out records for embedding drift (the modality's ``embed``; else the learner's
``transform``; else pooled pixel intensities of image arrays).

Nothing in it is a record: numeric columns are kept as their percentiles and the counts of the training records
between them, categorical columns as category counts, and the representation as a random projection to
:data:`EMBED_DIMS` dimensions of at most :data:`EMBED_SAMPLE` held-out records (a lossy summary, as the molecules
modality's fingerprints are). A served batch is summarised the same way (:func:`summarize_columns`): counts in
the reference's bins, so the monitoring store never holds input values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

REFERENCE_FILE = "monitoring.json"
REFERENCE_FORMAT = "medai-monitoring/1"
PERCENTILES = np.linspace(0.01, 0.99, 99)  # interior bin edges of a numeric column: its training percentiles
MAX_CATEGORIES = 50  # the rest of a categorical column's values share one bin
NUMERIC_MIN_DISTINCT = 11  # a numeric column with fewer distinct values is tested as categorical (chi-squared)
EMBED_DIMS = 16
EMBED_SAMPLE = 300
OTHER = "(other)"


# ------------------------------------------------------------------------------------------- columns


def column_reference(name: str, values: pd.Series) -> dict[str, Any] | None:
    """The reference of one column: ``numeric`` (percentile edges + counts) or ``categorical`` (category counts);
    ``None`` for a column with no values."""
    missing = values.isna()
    present = values[~missing]
    if present.empty:
        return None
    numeric = pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present)
    if numeric and present.nunique() >= NUMERIC_MIN_DISTINCT:
        x = present.to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        edges = np.unique(np.quantile(x, PERCENTILES))
        counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
        return {"name": name, "type": "numeric", "edges": [float(e) for e in edges],
                "counts": counts.astype(int).tolist(), "missing": int(missing.sum()), "n": int(len(values))}
    labels = present.map(_label)
    frequent = labels.value_counts().head(MAX_CATEGORIES)
    categories = [str(c) for c in frequent.index]
    counts = [int(c) for c in frequent.to_numpy()] + [int(len(labels) - frequent.sum())]
    return {"name": name, "type": "categorical", "categories": categories, "counts": counts,
            "missing": int(missing.sum()), "n": int(len(values))}


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def bin_counts(spec: dict[str, Any], values) -> tuple[dict[int, int], int]:
    """Counts of ``values`` in the bins of ``spec`` (sparse ``{bin: count}``) and the number missing."""
    series = pd.Series(values)
    if spec["type"] == "numeric":
        x = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(x)
        bins = np.searchsorted(np.asarray(spec["edges"], dtype=float), x[ok], side="right")
        missing = int((~ok).sum())
    else:
        missing_mask = series.isna()
        index = {c: i for i, c in enumerate(spec["categories"])}
        other = len(spec["categories"])
        bins = np.asarray([index.get(_label(v), other) for v in series[~missing_mask]], dtype=int)
        missing = int(missing_mask.sum())
    found, counts = np.unique(bins, return_counts=True)
    return {int(b): int(c) for b, c in zip(found, counts, strict=True)}, missing


def dense(sparse: dict, size: int) -> np.ndarray:
    out = np.zeros(size)
    for key, count in sparse.items():
        out[int(key)] += count
    return out


def n_bins(spec: dict[str, Any]) -> int:
    return len(spec["counts"])


# ------------------------------------------------------------------------------------- predictions


def prediction_frame(s, target) -> pd.DataFrame:
    """What the model said, one column per summary: the positive-class probability (binary), the predicted class
    (multiclass), each label's probability (multilabel) or the predicted value (regression)."""
    s = np.asarray(s, dtype=float)
    if target.kind == "binary":
        return pd.DataFrame({f"p({target.positive_label})": s})
    if target.kind == "multiclass":
        classes = np.asarray([str(c) for c in target.classes], dtype=object)
        return pd.DataFrame({"predicted class": pd.Series(classes[s.argmax(axis=1)], dtype=object)})
    if target.kind == "multilabel":
        return pd.DataFrame({f"p({c})": s[:, j] for j, c in enumerate(target.classes)})
    return pd.DataFrame({f"predicted {target.column}": s.reshape(len(s), -1)[:, 0]})


def feature_frame(X) -> pd.DataFrame | None:
    """The features of records a modality hands its learner, when they are a table (else ``None``)."""
    return X if isinstance(X, pd.DataFrame) else None


def summarize_columns(specs: list[dict[str, Any]], frame: pd.DataFrame | None) -> dict[str, dict]:
    """``{column: {"c": {bin: count}, "m": missing}}`` of a batch, for the reference columns it has."""
    out: dict[str, dict] = {}
    if frame is None:
        return out
    for spec in specs:
        if spec["name"] in frame.columns:
            counts, missing = bin_counts(spec, frame[spec["name"]])
            out[spec["name"]] = {"c": counts, "m": missing}
    return out


# -------------------------------------------------------------------------------------- embeddings


def representation(modality, learner, X) -> Any | None:
    """A numeric representation of records for embedding drift: the modality's ``embed``; else the learner's
    ``transform`` (scikit-learn convention: text vectorisers, sentence encoders); else, for an image array
    ``(n, channels, ...)``, its intensities average-pooled to at most 8 per spatial axis."""
    try:
        Z = modality.embed(learner, X)
    except Exception:  # noqa: BLE001 - a modality whose learner has no such representation
        Z = None
    if Z is None and hasattr(learner, "transform"):
        try:
            Z = learner.transform(X)
        except Exception:  # noqa: BLE001
            Z = None
    if Z is None and isinstance(X, np.ndarray) and X.ndim >= 3:
        Z = pool_pixels(X)
    if Z is None:
        return None
    if hasattr(Z, "toarray") or hasattr(Z, "tocsr"):
        return Z
    Z = np.asarray(Z, dtype=float)
    return Z.reshape(len(Z), -1) if Z.ndim != 2 else Z


def pool_pixels(X: np.ndarray, size: int = 8) -> np.ndarray:
    """Average-pool each image of ``(n, channels, *spatial)`` to at most ``size`` cells per spatial axis."""
    X = np.asarray(X, dtype=float)
    out = X
    for axis in range(2, X.ndim):
        length = out.shape[axis]
        cells = min(size, length)
        edges = np.linspace(0, length, cells + 1).astype(int)
        out = np.stack([out.take(range(a, b), axis=axis).mean(axis=axis) for a, b in
                        zip(edges[:-1], edges[1:], strict=True)], axis=axis)
    return out.reshape(len(out), -1)


def projector(dims: int, seed: int = 0):
    """The fixed random projection of a ``dims``-wide representation to :data:`EMBED_DIMS` (Johnson-Lindenstrauss:
    distances are kept approximately), rebuilt from its seed; ``None`` when ``dims`` is already small."""
    if dims <= EMBED_DIMS:
        return None
    from sklearn.random_projection import GaussianRandomProjection

    return GaussianRandomProjection(n_components=EMBED_DIMS, random_state=seed).fit(np.zeros((1, dims)))


def project(spec: dict[str, Any], Z, cache: dict | None = None) -> np.ndarray:
    """A representation in the reference's reduced, standardised coordinates."""
    key = ("projector", spec["dims"], spec["seed"])
    proj = cache.get(key) if cache is not None else None
    if proj is None:
        proj = projector(spec["dims"], spec["seed"])
        if cache is not None and proj is not None:
            cache[key] = proj
    if Z.shape[1] != spec["dims"]:
        raise ValueError(f"representation has {Z.shape[1]} dimensions, the reference {spec['dims']}")
    P = proj.transform(Z) if proj is not None else np.asarray(Z, dtype=float)
    P = np.asarray(P.toarray() if hasattr(P, "toarray") else P, dtype=float)
    return (P - np.asarray(spec["mean"])) / np.asarray(spec["scale"])


def embedding_reference(Z, seed: int = 0) -> dict[str, Any] | None:
    from medai.monitoring.stats import median_bandwidth

    n, dims = Z.shape
    if n < 10:
        return None
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(n, size=min(n, EMBED_SAMPLE), replace=False))
    Z = Z[take]
    proj = projector(dims, seed)
    P = proj.transform(Z) if proj is not None else np.asarray(Z, dtype=float)
    P = np.asarray(P.toarray() if hasattr(P, "toarray") else P, dtype=float)
    mean, scale = P.mean(axis=0), P.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    P = (P - mean) / scale
    return {"dims": int(dims), "seed": seed, "mean": np.round(mean, 8).tolist(), "scale": np.round(scale, 8).tolist(),
            "sample": np.round(P, 5).tolist(), "bandwidth": median_bandwidth(P)}


# --------------------------------------------------------------------------------------- the whole


def build_reference(modality, learner, X_all, X_heldout, s_heldout, target, seed: int = 0) -> dict[str, Any]:
    """The monitoring reference of a freshly trained model (see the module docs)."""
    features = feature_frame(X_all)
    feature_specs = []
    if features is not None:
        feature_specs = [spec for name in features.columns
                         if (spec := column_reference(str(name), features[name])) is not None]
    predictions = prediction_frame(s_heldout, target)
    prediction_specs = [spec for name in predictions.columns
                        if (spec := column_reference(str(name), predictions[name])) is not None]
    embedding = None
    Z = representation(modality, learner, X_heldout)
    if Z is not None and Z.shape[0] >= 10:
        embedding = embedding_reference(Z, seed)
    return {"format": REFERENCE_FORMAT, "features": feature_specs, "predictions": prediction_specs,
            "embedding": embedding, "n_heldout": int(len(np.asarray(s_heldout)))}
