"""The columns of a table of patient records: which are features, of which type, and what was left out.

Everything a user file can get wrong is caught here with a message that names the file, column or rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from medai.errors import MedAIError
from medai.tasks.kinds import label_text

# An object column with more distinct values than this (and mostly unique) looks like free text or an ID.
MAX_CATEGORIES = 50
MISSING_TEXT = ["", "?", "NA", "N/A", "na", "nan", "NaN", "null", "None"]


@dataclass
class ColumnSpec:
    name: str
    kind: str  # "numeric" or "categorical"
    categories: list[str] = field(default_factory=list)
    min: float | None = None  # range seen in the training file (numeric columns)
    max: float | None = None
    low: float | None = None  # physiological limits a task declares (values beyond them are impossible)
    high: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TabularSchema:
    """What a tabular model expects as input."""

    features: list[ColumnSpec]
    id_column: str | None = None
    group_column: str | None = None
    dropped: dict[str, str] = field(default_factory=dict)  # column -> reason

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    def to_json(self) -> dict:
        return {"fields": [c.to_json() for c in self.features], "id_column": self.id_column,
                "group_column": self.group_column, "dropped": self.dropped}

    @classmethod
    def from_json(cls, data: dict) -> TabularSchema:
        return cls(features=[ColumnSpec(**c) for c in data["fields"]], id_column=data.get("id_column"),
                   group_column=data.get("group_column"), dropped=dict(data.get("dropped", {})))


def _looks_numeric(series: pd.Series) -> bool:
    present = series.dropna()
    if present.empty:
        return False
    converted = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    return bool(converted.notna().all())


def infer_schema(
    frame: pd.DataFrame,
    exclude: list[str],
    *,
    id_column: str | None = None,
    group_column: str | None = None,
    categorical: list[str] | None = None,
    limits: dict[str, tuple[float | None, float | None]] | None = None,
    source: str = "data",
) -> TabularSchema:
    """Describe the feature columns of a training table (every column but ``exclude``, the id and the group);
    raises :class:`MedAIError` on anything unusable."""
    from medai.modalities import column_hint

    columns = list(frame.columns)
    for role, name in (("id column", id_column), ("group column", group_column)):
        if name is not None and name not in columns:
            raise MedAIError(f"{role} {name!r} is not in {source}; columns are: {columns}")
    categorical = set(categorical or [])
    features: list[ColumnSpec] = []
    dropped: dict[str, str] = {}
    for name in columns:
        if name in (*exclude, id_column, group_column):
            continue
        series = frame[name]
        if series.isna().all():
            raise MedAIError(f"column {name!r} in {source} is entirely missing; remove it or fill it in")
        if name in categorical or not (pd.api.types.is_numeric_dtype(series) or _looks_numeric(series)):
            values = series.dropna().map(label_text)
            distinct = values.nunique()
            if name not in categorical and distinct > MAX_CATEGORIES and distinct > 0.5 * len(values):
                hint = column_hint(series.dropna(), skip="tabular")
                dropped[name] = f"free text or identifier ({distinct} distinct values)" + (f"; {hint}" if hint else "")
                continue
            features.append(ColumnSpec(name, "categorical", sorted(values.unique().tolist())))
        else:
            numbers = pd.to_numeric(series.astype("string").str.strip().where(lambda s: ~s.isin(MISSING_TEXT))
                                    if not pd.api.types.is_numeric_dtype(series) else series, errors="coerce")
            finite = numbers[np.isfinite(numbers.astype(float))]
            limits = limits or {}
            low, high = limits.get(name, limits.get("*", (None, None)))  # "*": every numeric column
            features.append(ColumnSpec(name, "numeric", min=float(finite.min()) if len(finite) else None,
                                       max=float(finite.max()) if len(finite) else None, low=low, high=high))
    if not features:
        raise MedAIError(f"{source} has no usable feature columns besides {exclude}")
    return TabularSchema(features=features, id_column=id_column, group_column=group_column, dropped=dropped)


def _rows(index_positions: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(i) + 1) for i in index_positions[:limit])
    more = f" and {len(index_positions) - limit} more" if len(index_positions) > limit else ""
    return f"row{'s' if len(index_positions) > 1 else ''} {shown}{more}"


def _check_finite(values: np.ndarray, column: str, source: str) -> None:
    """Infinite numbers (1e400 in a file, an overflowed export) are not measurements: name their rows."""
    bad = np.flatnonzero(np.isinf(values))
    if bad.size:
        raise MedAIError(
            f"{source}: column {column!r} must hold finite numbers but {_rows(bad)} "
            f"{'hold' if bad.size > 1 else 'holds'} an infinite value"
        )


def coerce_features(frame: pd.DataFrame, schema: TabularSchema, source: str = "input") -> pd.DataFrame:
    """The feature columns of ``frame`` in the model's order and types, or a clear error.

    Rows are numbered from 1 (the first record after the header).
    """
    missing = [name for name in schema.feature_names if name not in frame.columns]
    if missing:
        raise MedAIError(f"{source} is missing column(s) the model needs: {missing}")
    out = {}
    for spec in schema.features:
        series = frame[spec.name]
        if spec.kind == "numeric":
            if pd.api.types.is_bool_dtype(series):
                series = series.astype(float)
            if pd.api.types.is_numeric_dtype(series):
                values = series.astype(float).to_numpy()
                _check_finite(values, spec.name, source)
                out[spec.name] = values
                continue
            text = series.astype("string").str.strip()
            blank = text.isna() | text.isin(MISSING_TEXT)
            numbers = pd.to_numeric(text.where(~blank), errors="coerce")
            bad = np.flatnonzero((numbers.isna() & ~blank).to_numpy())
            if bad.size:
                raise MedAIError(
                    f"{source}: column {spec.name!r} must be numeric but {_rows(bad)} "
                    f"{'hold' if bad.size > 1 else 'holds'} text"
                )
            values = numbers.astype(float).to_numpy()
            _check_finite(values, spec.name, source)
            out[spec.name] = values
        else:
            values = series.map(lambda v: np.nan if pd.isna(v) else label_text(v))
            out[spec.name] = values.astype(object).to_numpy()
    return pd.DataFrame(out, index=frame.index)


def data_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over column names and cell values: the same table gives the same fingerprint."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def row_keys(X: pd.DataFrame) -> np.ndarray:
    """One hash per record over its feature values (duplicates across splits)."""
    return pd.util.hash_pandas_object(X.astype(str), index=False).to_numpy()


def range_extras(model, X: pd.DataFrame | None, records: list[dict] | None = None) -> dict[str, list]:
    """A table model's per-record ``outside_training_data`` flags and ``out_of_range`` reasons (the
    ``record_extras`` of every modality whose inputs are table rows), from the frame ``X`` or the JSON records."""
    rows = records if X is None else [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in X.to_dict(orient="records")]
    if "schema" not in model.cache:
        model.cache["schema"] = TabularSchema.from_json(model.input_schema)
    flags, reasons = range_flags(model.cache["schema"], rows)
    return {"outside_training_data": flags, "out_of_range": reasons}


def range_flags(schema: TabularSchema, rows: list[dict]) -> tuple[list[bool], list[list[str]]]:
    """For each record (a dict of typed values), whether it lies outside what the model saw in training, and
    why: a value outside a declared physiological limit or outside the training range, or no value at all.
    Reasons name fields and directions, never values."""
    flags, reasons = [], []
    numeric = [c for c in schema.features if c.kind == "numeric"]
    for row in rows:
        why = []
        for spec in numeric:
            value = row.get(spec.name)
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
                why.append(f"{spec.name} outside its physiological limits")
            elif spec.min is not None and value < spec.min:
                why.append(f"{spec.name} below the training range")
            elif spec.max is not None and value > spec.max:
                why.append(f"{spec.name} above the training range")
        if all(row.get(c.name) is None or (isinstance(row.get(c.name), float) and np.isnan(row[c.name]))
               for c in schema.features):
            why.append("every field missing")
        flags.append(bool(why))
        reasons.append(why)
    return flags, reasons
