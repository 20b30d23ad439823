"""Kinds of target: what a model predicts, how raw target values are encoded, and how the kind is inferred.

A :class:`TargetSpec` is the one description of a target that every stage of the road shares:

- ``binary``: ``classes`` in the learner's output order, ``positive_label`` the class that means "has the
  condition"; ``y`` is the index into ``classes``.
- ``multiclass``: ``classes`` in output order; ``y`` is the index into ``classes``.
- ``multilabel``: ``classes`` are the label names; ``y`` is an ``(n, L)`` float array of 0/1 with NaN where a
  label is unknown for a record (a record may carry several labels).
- ``regression``: ``y`` is a float array.
- ``entities``: ``classes`` are the entity types; ``y`` is an object array holding, per document, the list of its
  ``(start, end, type)`` character spans (end exclusive).

Kinds that later modalities bring (``survival``, ``treatment-effect``) fit the same slot.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from medai.errors import MedAIError

KINDS = ("binary", "multiclass", "multilabel", "regression", "entities", "survival", "treatment-effect")
ROAD_KINDS = ("binary", "multiclass", "multilabel", "regression", "entities", "survival", "treatment-effect")
# Kinds whose target spans several columns with roles (time + event; treatment + outcome): the reader names them
# (``Dataset.target_kind`` and ``Dataset.target_fields``), never inferred from the values.
COMPOSITE_KINDS = ("survival", "treatment-effect")
# Pairs whose positive member nobody would dispute; anything else (1/2, two names) must be named.
OBVIOUS_PAIRS = {
    ("0", "1"): "1", ("no", "yes"): "yes", ("n", "y"): "y", ("false", "true"): "true", ("f", "t"): "t",
    ("negative", "positive"): "positive", ("neg", "pos"): "pos", ("-", "+"): "+", ("absent", "present"): "present",
}
MAX_CLASSES = 50  # a text target with more distinct values is not a class label
MAX_INTEGER_CLASSES = 10  # an integer target with at most this many values is read as classes
MULTILABEL_SEPARATOR = ";"


def label_text(value) -> str:
    """A target value as the text it is compared by (``1.0`` -> ``'1'``)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    if isinstance(value, np.integer):
        value = int(value)
    return str(value).strip()


def _rows(positions, limit: int = 5) -> str:
    positions = np.asarray(positions)
    shown = ", ".join(str(int(i) + 1) for i in positions[:limit])
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return f"row{'s' if len(positions) > 1 else ''} {shown}{more}"


@dataclass
class TargetSpec:
    kind: str
    column: str
    classes: list[str] = field(default_factory=list)
    positive_label: str | None = None
    how: str = ""  # how the kind and the positive class were decided, said on the console and in the report
    fields: dict = field(default_factory=dict)  # composite kinds: the roles of the columns and what they fix

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MedAIError(f"kind must be one of {', '.join(ROAD_KINDS)}, got {self.kind!r}")

    @property
    def positive_index(self) -> int | None:
        if self.kind != "binary":
            return None
        return self.classes.index(self.positive_label)

    @property
    def negative_label(self) -> str | None:
        return None if self.kind != "binary" else self.classes[1 - self.positive_index]

    def encode(self, values, source: str = "data") -> np.ndarray:
        """Raw target values (no missing ones) -> what learners and evaluators take; clear errors by row."""
        if self.kind == "regression":
            return _numbers(pd.Series(values).reset_index(drop=True), self.column, source)
        if self.kind == "multilabel":
            return _label_matrix(values, self.classes, self.column, source)
        if self.kind == "entities":
            return span_lists(values, source)
        if self.kind in COMPOSITE_KINDS:
            from medai.tasks import composite

            return composite.encode(self, values, source)
        texts = pd.Series(values).reset_index(drop=True).map(label_text)
        index = {c: i for i, c in enumerate(self.classes)}
        codes = texts.map(index)
        unknown = np.flatnonzero(codes.isna().to_numpy())
        if unknown.size:
            raise MedAIError(f"{source}: target {self.column!r} has values outside {self.classes[:10]} in "
                             f"{_rows(unknown)} (e.g. {texts.iloc[unknown[0]]!r})")
        return codes.to_numpy().astype(int)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TargetSpec:
        return cls(**{k: data[k] for k in ("kind", "column", "classes", "positive_label", "how", "fields")
                   if k in data})


def _numbers(series: pd.Series, column: str, source: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        raise MedAIError(f"{source}: target {column!r} holds true/false values; a regression target must be numeric")
    numbers = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy())
    if bad.size:
        raise MedAIError(f"{source}: regression target {column!r} must be numeric but {_rows(bad)} "
                         f"{'hold' if bad.size > 1 else 'holds'} text (e.g. {series.iloc[bad[0]]!r})")
    values = numbers.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise MedAIError(f"{source}: regression target {column!r} holds infinite values")
    return values


def split_labels(value) -> list[str] | None:
    """One multilabel cell -> its labels: ``'a;b'``, a JSON list ``'["a", "b"]'`` or a Python list."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, list | tuple | set | np.ndarray):
        items = list(value)
    else:
        text = str(value).strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                items = json.loads(text.replace("'", '"'))
            except ValueError:
                items = text[1:-1].split(",")
        else:
            items = text.split(MULTILABEL_SEPARATOR)
    return [label_text(item).strip("'\" ") for item in items if label_text(item).strip("'\" ")]


def _label_matrix(values, labels: list[str], column: str, source: str) -> np.ndarray:
    """Label sets (one cell per record) or a frame of 0/1 columns (NaN = unknown) -> ``(n, L)`` floats."""
    if isinstance(values, pd.DataFrame):
        out = np.full((len(values), len(labels)), np.nan)
        for j, name in enumerate(labels):
            if name not in values.columns:
                raise MedAIError(f"{source} has no label column {name!r}")
            texts = values[name].map(lambda v: None if pd.isna(v) else label_text(v).lower())
            bad = np.flatnonzero(~texts.isin([None, "0", "1", "true", "false", "yes", "no"]).to_numpy())
            if bad.size:
                raise MedAIError(f"{source}: label column {name!r} must hold 0/1 (or be empty when unknown); "
                                 f"{_rows(bad)} hold {values[name].iloc[bad[0]]!r}")
            out[:, j] = texts.map({"1": 1.0, "true": 1.0, "yes": 1.0, "0": 0.0, "false": 0.0, "no": 0.0})
        return out
    sets = [split_labels(v) for v in values]
    empty = [i for i, s in enumerate(sets) if s is not None and not s]
    if empty:
        raise MedAIError(f"{source}: multilabel target {column!r} has an empty label set in {_rows(empty)}; give "
                         "each record its labels separated by ';' (leave the cell empty if they are unknown)")
    index = {name: j for j, name in enumerate(labels)}
    out = np.zeros((len(sets), len(labels)))
    for i, labels_of_row in enumerate(sets):
        if labels_of_row is None:
            out[i] = np.nan
            continue
        unknown = [name for name in labels_of_row if name not in index]
        if unknown:
            raise MedAIError(f"{source}: {_rows([i])} of {column!r} has label(s) {unknown} the model does not know "
                             f"({labels[:10]})")
        out[i, [index[name] for name in labels_of_row]] = 1.0
    return out


def choose_positive_label(values, requested: str | None = None, column: str = "target",
                          requested_how: str = "named with --positive-label") -> tuple[str, str]:
    """Which of two target values means 'has the condition', and why.

    A requested label wins. Otherwise only pairs nobody would dispute are decided here (0/1, yes/no,
    true/false, positive/negative and their short forms, present/absent); for anything else (1/2, two
    names) the user must say which with ``--positive-label``.
    """
    texts = [label_text(v) for v in values]
    if requested is not None:
        requested_text = label_text(requested)
        if requested_text not in texts:
            raise MedAIError(f"positive label {requested!r} is not a value of column {column!r} (values: {texts})")
        return requested_text, requested_how
    key = tuple(sorted(t.lower() for t in texts))
    if len(texts) == 2 and key in OBVIOUS_PAIRS:
        positive = next(t for t in texts if t.lower() == OBVIOUS_PAIRS[key])
        return positive, f"{positive!r} of {'/'.join(texts)}, the conventional coding"
    raise MedAIError(f"cannot tell which value of {column!r} is the positive class ({texts}); "
                     "name it with --positive-label")


def infer_target(values, column: str, kind: str | None = None, positive_label: str | None = None,
                 classes: list[str] | None = None, source: str = "data", kind_how: str = "set with --kind",
                 positive_how: str = "named with --positive-label", fields: dict | None = None) -> TargetSpec:
    """Decide the kind of a target (or check the one asked for) and build its :class:`TargetSpec`.

    ``values`` are the labelled records' raw target values (a Series; a DataFrame of 0/1 columns for a
    multilabel target given as several columns). ``classes`` fixes the class order when the data defines it
    (e.g. an image data set's label names); otherwise classes are sorted.
    """
    if kind is not None and kind not in ROAD_KINDS:
        raise MedAIError(f"--kind must be one of {', '.join(ROAD_KINDS)}, got {kind!r}")
    if kind in COMPOSITE_KINDS:
        from medai.tasks import composite

        return composite.infer(kind, values, column, fields or {}, source)
    if isinstance(values, pd.DataFrame):
        if kind not in (None, "multilabel"):
            raise MedAIError(f"several target columns make a multilabel target, not {kind}")
        _label_matrix(values, list(values.columns), column, source)  # checks the cells
        return TargetSpec("multilabel", column, [str(c) for c in values.columns],
                          how=f"{values.shape[1]} target columns: one label each (multilabel)")
    if kind == "entities" or (kind is None and _looks_like_spans(values)):
        spans = span_lists(values, source)
        types = sorted({span[2] for doc in spans for span in doc}, key=_natural)
        if not types:
            raise MedAIError(f"{source}: no document has an entity span; an entity model needs annotated spans")
        return TargetSpec("entities", column, types, how=kind_how if kind else "character spans per document "
                          f"({sum(map(len, spans))} spans of {len(types)} types)")
    series = pd.Series(values).reset_index(drop=True)
    if series.empty:
        raise MedAIError(f"{source}: target {column!r} has no labelled records")
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    texts = series.map(label_text)
    distinct = sorted(texts.unique(), key=_natural)
    looks_multilabel = not numeric and texts.str.contains(MULTILABEL_SEPARATOR, regex=False).any() or (
        not numeric and texts.str.startswith("[").all())
    if kind is None:
        if looks_multilabel:
            kind, how = "multilabel", f"values hold label sets separated by '{MULTILABEL_SEPARATOR}'"
        elif len(distinct) == 2:
            kind, how = "binary", "two distinct values"
        elif numeric and (series % 1 == 0).all() and len(distinct) <= MAX_INTEGER_CLASSES:
            kind, how = "multiclass", (f"{len(distinct)} distinct whole-number values (use --kind regression "
                                       "to treat them as a quantity)")
        elif numeric:
            kind, how = "regression", f"numeric with {len(distinct)} distinct values"
        else:
            kind, how = "multiclass", f"{len(distinct)} distinct values"
    else:
        how = kind_how
    if len(distinct) < 2:
        raise MedAIError(f"{source}: target {column!r} has a single value ({distinct}); a model needs at least two")
    if kind == "regression":
        _numbers(series, column, source)
        return TargetSpec("regression", column, [], how=how)
    if kind == "multilabel":
        sets = [split_labels(v) for v in series]
        labels = sorted({label for s in sets if s for label in s}, key=_natural)
        _label_matrix(series, labels, column, source)
        if len(labels) < 2:
            raise MedAIError(f"{source}: multilabel target {column!r} has fewer than two labels ({labels})")
        return TargetSpec("multilabel", column, labels, how=how)
    order = [label_text(c) for c in classes] if classes else distinct
    missing = [c for c in distinct if c not in order]
    if missing:
        raise MedAIError(f"{source}: target {column!r} has values {missing[:5]} outside the classes {order[:10]}")
    if kind == "binary":
        if len(order) != 2:
            raise MedAIError(f"{source}: target {column!r} has {len(order)} values ({order[:10]}); a binary "
                             "target needs exactly two (use --kind multiclass)")
        positive, why = choose_positive_label(order, positive_label, column, positive_how)
        if not classes:  # no order given by the data: [negative, positive]
            order = sorted(order, key=lambda c: c == positive)
        return TargetSpec("binary", column, order, positive, f"{how}; positive class {why}")
    if len(distinct) > MAX_CLASSES:
        raise MedAIError(f"{source}: target {column!r} has {len(distinct)} distinct values; that is not a class "
                         f"label (at most {MAX_CLASSES} classes){' - use --kind regression' if numeric else ''}")
    if kind == "multiclass" and numeric and not (series % 1 == 0).all():
        raise MedAIError(f"{source}: target {column!r} holds fractional numbers; classes need whole numbers or "
                         "names (use --kind regression)")
    return TargetSpec("multiclass", column, order, how=how)


def _looks_like_spans(values) -> bool:
    values = list(values) if not isinstance(values, pd.DataFrame) else []
    return bool(values) and all(isinstance(v, list | tuple) and all(isinstance(s, list | tuple) and len(s) == 3
                                                                    for s in v) for v in values[:50])


def span_lists(values, source: str = "data") -> np.ndarray:
    """Per document, its ``(start, end, type)`` spans -> an object array of lists of tuples (checked)."""
    out = np.empty(len(values), dtype=object)
    for i, doc in enumerate(values):
        if not isinstance(doc, list | tuple):
            raise MedAIError(f"{source}: document {i + 1} has no list of entity spans (got {type(doc).__name__})")
        spans = []
        for span in doc:
            try:
                start, end, label = int(span[0]), int(span[1]), str(span[2])
            except (TypeError, ValueError, IndexError):
                raise MedAIError(f"{source}: document {i + 1} has an entity span that is not (start, end, type): "
                                 f"{span!r}") from None
            if not 0 <= start < end:
                raise MedAIError(f"{source}: document {i + 1} has an empty or negative span {start}-{end}")
            spans.append((start, end, label))
        out[i] = spans
    return out


def _natural(text: str):
    """Numbers in numeric order, then text."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)
