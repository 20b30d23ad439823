"""Tabular patient records: reading files, checking them, inferring column types, naming the target.

Everything a user file can get wrong is caught here with a message that names the file, column or rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medai.errors import MedAIError, NotFoundError

POSITIVE_WORDS = {
    "yes", "y", "true", "t", "pos", "positive", "+", "malignant", "present", "abnormal", "disease",
    "diseased", "case", "died", "dead", "death", "event", "sick", "ill", "high", "high risk",
}
NEGATIVE_WORDS = {
    "no", "n", "false", "f", "neg", "negative", "-", "benign", "absent", "normal", "healthy", "control",
    "alive", "survived", "none", "well", "low", "low risk",
}
# An object column with more distinct values than this (and mostly unique) looks like free text or an ID.
MAX_CATEGORIES = 50


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file of records, with clear errors for missing, empty or unreadable files."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"data file {path} does not exist")
    if path.is_dir():
        raise MedAIError(f"{path} is a directory; expected a .csv, .tsv or .parquet file")
    if path.stat().st_size == 0:
        raise MedAIError(f"data file {path} is empty; expected a header row and at least one record")
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".parquet") or suffix.endswith(".pq"):
            frame = pd.read_parquet(path)
        elif suffix.endswith(".tsv") or suffix.endswith(".tab"):
            frame = pd.read_csv(path, sep="\t")
        else:
            frame = pd.read_csv(path, sep=None, engine="python") if suffix.endswith(".txt") else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise MedAIError(f"data file {path} is empty; expected a header row and at least one record") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MedAIError(f"could not read {path} as a table: {first}") from None
    if frame.empty:
        raise MedAIError(f"data file {path} has a header but no records")
    header = list(frame.columns)
    if suffix.endswith((".csv", ".tsv", ".tab")):  # pandas renames repeated names to "name.1": look at the raw header
        import csv

        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            header = next(csv.reader(handle, delimiter="\t" if suffix.endswith((".tsv", ".tab")) else ","), header)
    header = [str(c).strip() for c in header]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    frame.columns = [str(c).strip() for c in frame.columns]
    if duplicated:
        raise MedAIError(f"data file {path} repeats the column name(s) {duplicated}; names must be unique")
    return frame


@dataclass
class ColumnSpec:
    name: str
    kind: str  # "numeric" or "categorical"
    categories: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TabularSchema:
    """What a tabular model expects as input and how its target was coded."""

    features: list[ColumnSpec]
    target: str
    classes: list[str]  # [negative, positive] as they appear in the data, as strings
    positive_label: str
    id_column: str | None = None
    group_column: str | None = None
    dropped: dict[str, str] = field(default_factory=dict)  # column -> reason

    @property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    @property
    def numeric(self) -> list[str]:
        return [c.name for c in self.features if c.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [c.name for c in self.features if c.kind == "categorical"]

    def to_json(self) -> dict:
        return {
            "features": [c.to_json() for c in self.features],
            "target": self.target,
            "classes": self.classes,
            "positive_label": self.positive_label,
            "id_column": self.id_column,
            "group_column": self.group_column,
            "dropped": self.dropped,
        }

    @classmethod
    def from_json(cls, data: dict) -> TabularSchema:
        return cls(
            features=[ColumnSpec(**c) for c in data["features"]],
            target=data["target"],
            classes=list(data["classes"]),
            positive_label=data["positive_label"],
            id_column=data.get("id_column"),
            group_column=data.get("group_column"),
            dropped=dict(data.get("dropped", {})),
        )


def _label_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def choose_positive_label(values: list, requested: str | None = None, column: str = "target") -> str:
    """Which of the two target values means 'has the condition'.

    A requested label wins; otherwise a recognised word (yes/no, pos/neg, true/false, malignant/benign, ...),
    otherwise the larger of two numbers (0/1 -> 1, 1/2 -> 2). Anything else is ambiguous and must be named.
    """
    texts = [_label_text(v) for v in values]
    if requested is not None:
        requested_text = _label_text(requested)
        if requested_text not in texts:
            raise MedAIError(f"positive label {requested!r} is not a value of column {column!r} (values: {texts})")
        return requested_text
    lowered = [t.lower() for t in texts]
    positive = [t for t, low in zip(texts, lowered, strict=True) if low in POSITIVE_WORDS]
    negative = [t for t, low in zip(texts, lowered, strict=True) if low in NEGATIVE_WORDS]
    if len(positive) == 1 and (len(negative) == 1 or len(texts) == 2) and positive[0] not in negative:
        return positive[0]
    if len(negative) == 1 and len(positive) == 0:
        return next(t for t in texts if t != negative[0])
    try:
        numbers = [float(t) for t in texts]
    except ValueError:
        numbers = None
    if numbers is not None:
        return texts[int(np.argmax(numbers))]
    raise MedAIError(
        f"cannot tell which value of {column!r} is the positive class ({texts}); name it with --positive-label"
    )


def _looks_numeric(series: pd.Series) -> bool:
    present = series.dropna()
    if present.empty:
        return False
    converted = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    return bool(converted.notna().all())


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    *,
    id_column: str | None = None,
    group_column: str | None = None,
    categorical: list[str] | None = None,
    positive_label: str | None = None,
    source: str = "data",
) -> TabularSchema:
    """Check a training table and describe its columns; raises :class:`MedAIError` on anything unusable."""
    columns = list(frame.columns)
    if target not in columns:
        raise MedAIError(f"target column {target!r} is not in {source}; columns are: {columns}")
    for role, name in (("id column", id_column), ("group column", group_column)):
        if name is not None and name not in columns:
            raise MedAIError(f"{role} {name!r} is not in {source}; columns are: {columns}")
    labels = frame[target].dropna()
    classes = sorted({_label_text(v) for v in labels})
    if len(classes) < 2:
        raise MedAIError(
            f"target column {target!r} in {source} has {len(classes)} class ({classes}); "
            "a binary task needs two classes"
        )
    if len(classes) > 2:
        raise MedAIError(
            f"target column {target!r} in {source} has {len(classes)} classes ({classes[:10]}); "
            "tabular risk models need a binary target (e.g. yes/no)"
        )
    positive = choose_positive_label(classes, positive_label, target)
    negative = next(c for c in classes if c != positive)
    categorical = set(categorical or [])
    features: list[ColumnSpec] = []
    dropped: dict[str, str] = {}
    for name in columns:
        if name in (target, id_column, group_column):
            continue
        series = frame[name]
        if series.isna().all():
            raise MedAIError(
                f"column {name!r} in {source} is entirely missing; remove it or fill it in"
            )
        if name in categorical or not (pd.api.types.is_numeric_dtype(series) or _looks_numeric(series)):
            values = series.dropna().map(_label_text)
            distinct = values.nunique()
            if name not in categorical and distinct > MAX_CATEGORIES and distinct > 0.5 * len(values):
                dropped[name] = f"free text or identifier ({distinct} distinct values)"
                continue
            features.append(ColumnSpec(name, "categorical", sorted(values.unique().tolist())))
        else:
            features.append(ColumnSpec(name, "numeric"))
    if not features:
        raise MedAIError(f"{source} has no usable feature columns besides the target {target!r}")
    return TabularSchema(
        features=features,
        target=target,
        classes=[negative, positive],
        positive_label=positive,
        id_column=id_column,
        group_column=group_column,
        dropped=dropped,
    )


def _rows(index_positions: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(i) + 1) for i in index_positions[:limit])
    more = f" and {len(index_positions) - limit} more" if len(index_positions) > limit else ""
    return f"row{'s' if len(index_positions) > 1 else ''} {shown}{more}"


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
                out[spec.name] = series.astype(float).to_numpy()
                continue
            text = series.astype("string").str.strip()
            blank = text.isna() | text.isin(["", "?", "NA", "N/A", "na", "nan", "NaN", "null", "None"])
            numbers = pd.to_numeric(text.where(~blank), errors="coerce")
            bad = np.flatnonzero((numbers.isna() & ~blank).to_numpy())
            if bad.size:
                example = series.iloc[bad[0]]
                raise MedAIError(
                    f"{source}: column {spec.name!r} must be numeric but {_rows(bad)} "
                    f"{'hold' if bad.size > 1 else 'holds'} text (e.g. {example!r})"
                )
            out[spec.name] = numbers.astype(float).to_numpy()
        else:
            values = series.map(lambda v: np.nan if pd.isna(v) else _label_text(v))
            out[spec.name] = values.astype(object).to_numpy()
    return pd.DataFrame(out, index=frame.index)


def encode_target(frame: pd.DataFrame, schema: TabularSchema, source: str = "data") -> np.ndarray:
    """0/1 target (1 = positive label); rows without a label are an error here (drop them before)."""
    if schema.target not in frame.columns:
        raise MedAIError(f"target column {schema.target!r} is not in {source}")
    labels = frame[schema.target].map(lambda v: None if pd.isna(v) else _label_text(v))
    unknown = ~labels.isin(schema.classes)
    if unknown.any():
        bad = np.flatnonzero(unknown.to_numpy())
        raise MedAIError(
            f"{source}: target {schema.target!r} has values outside {schema.classes} in {_rows(bad)}"
        )
    return (labels == schema.positive_label).to_numpy().astype(int)


def drop_unlabelled(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    keep = frame[target].notna()
    return frame.loc[keep].reset_index(drop=True), int((~keep).sum())


def data_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over column names and cell values: the same table gives the same fingerprint."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
