"""Reading a user's text data: a table with a free-text column (CSV, Parquet, JSON lines, ...), a folder of
plain-text files with one sub-folder per class, or a span-annotated corpus (BRAT, CoNLL/BIO, PubTator)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from medai.data.dataset import Dataset, Inputs
from medai.data.tables import read_table, table_format
from medai.errors import MedAIError
from medai.modalities.base import labelled_records
from medai.modalities.text.corpora import MAX_DOCUMENT_BYTES, Corpus, detect_format, read_corpus, read_text_file

TEXT_FIELD = "text"  # the one field of a text record in the service: {"records": [{"text": "..."}]}
MIN_TEXT_CHARS = 25  # mean length above which a column of distinct strings reads as free text
ENTITY_TARGET = "entities"


def looks_like_free_text(series: pd.Series) -> bool:
    """Whether a column holds free text (sentences), not categories or identifiers."""
    values = series.dropna()
    values = values[values.map(lambda v: isinstance(v, str))]
    if len(values) < max(1, 0.5 * len(series.dropna())) or values.empty:
        return False
    sample = values.head(500)
    words = sample.str.split().map(len)
    distinct = sample.nunique()
    return bool(sample.str.len().mean() >= MIN_TEXT_CHARS and words.mean() >= 4 and
                (distinct > 50 or distinct >= 0.3 * len(sample)))


def text_columns(frame: pd.DataFrame, exclude=()) -> list[str]:
    return [c for c in frame.columns
            if c not in exclude and frame[c].dtype == object and looks_like_free_text(frame[c])]


def class_folders(path: Path) -> list[Path]:
    """Sub-folders of ``path`` that hold ``.txt`` files (one per class), when the folder is laid out that way."""
    if not path.is_dir():
        return []
    subs = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    with_text = [p for p in subs if next(p.glob("*.txt"), None) is not None]
    loose = [p for p in path.glob("*.txt")]
    return with_text if len(with_text) >= 2 and not loose else []


def fingerprint(texts, labels) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f" + str(label).encode() + b"\x1e")
    return digest.hexdigest()


def check_texts(texts: list, source: str, ids=None) -> list[str]:
    """The texts as strings; empty ones and oversized ones are errors naming the record."""
    out = []
    for i, text in enumerate(texts):
        name = f"record {ids[i] if ids is not None else i + 1}"
        if text is None or (isinstance(text, float) and np.isnan(text)):
            raise MedAIError(f"{source}: {name} has no text")
        text = str(text)
        if not text.strip():
            raise MedAIError(f"{source}: {name} has an empty text")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
            raise MedAIError(f"{source}: {name} holds more than {MAX_DOCUMENT_BYTES // 2**20} MB of text")
        out.append(text)
    return out


# -- training data ----------------------------------------------------------------------------------------

def corpus_dataset(corpus: Corpus, source: str, notes: list[str]) -> Dataset:
    texts = [d.text for d in corpus.documents]
    spans = [d.span_keys() for d in corpus.documents]
    problems = corpus.report()
    notes = [f"{corpus.format} corpus: {len(texts)} documents, {sum(map(len, spans))} entity spans", *notes]
    warnings = []
    if problems:
        warnings.append(f"{len(problems)} document(s) with annotation problems (first: {problems[0]})")
    return Dataset(X=texts, y=spans, target_column=ENTITY_TARGET,
                   input_schema={"fields": [{"name": TEXT_FIELD, "kind": "text"}], "text_column": TEXT_FIELD,
                                 "format": corpus.format},
                   source=source, fingerprint=fingerprint(texts, spans), notes=notes, warnings=warnings,
                   record_keys=np.array([hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()
                                         for t in texts]),
                   options={"problems": corpus.problems})


def table_dataset(path: Path, options) -> Dataset:
    frame = read_table(path)
    extra = options.extra
    if not options.target:
        raise MedAIError("a table of texts needs --target COLUMN (the label to predict)")
    targets = [t.strip() for t in str(options.target).split(",") if t.strip()]
    missing = [t for t in targets if t not in frame.columns]
    if missing:
        raise MedAIError(f"target column {missing[0]!r} is not in {path}; columns are: {list(frame.columns)}")
    column = choose_text_column(frame, extra.get("text_column"), [*targets, options.id_column, options.group_column],
                                str(path))
    labelled = frame[targets].notna().any(axis=1) if len(targets) > 1 else frame[targets[0]].notna()
    notes = []
    if not labelled.all():
        notes.append(f"{int((~labelled).sum())} record(s) without a value of {', '.join(targets)} were left out.")
    frame = frame.loc[labelled].reset_index(drop=True)
    ids = frame[options.id_column].tolist() if options.id_column else None
    texts = check_texts(frame[column].tolist(), str(path), ids)
    unused = [c for c in frame.columns if c not in (column, *targets, options.id_column, options.group_column)]
    if unused:
        notes.append(f"Columns {unused} were not used: a text model reads only the text column {column!r}.")
    y = frame[targets] if len(targets) > 1 else frame[targets[0]]
    group = options.group_column
    return Dataset(X=texts, y=y, target_column=",".join(targets),
                   input_schema={"fields": [{"name": TEXT_FIELD, "kind": "text"}], "text_column": column,
                                 "id_column": options.id_column},
                   source=str(path), fingerprint=fingerprint(texts, y.astype(str).agg("|".join, axis=1)
                                                             if len(targets) > 1 else y),
                   groups=frame[group].to_numpy() if group else None, group_column=group,
                   record_keys=np.array([hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()
                                         for t in texts]), notes=notes)


def choose_text_column(frame: pd.DataFrame, requested: str | None, exclude, source: str) -> str:
    if requested:
        if requested not in frame.columns:
            raise MedAIError(f"--text-column {requested!r} is not in {source}; columns are: {list(frame.columns)}")
        return requested
    candidates = text_columns(frame, exclude)
    if not candidates:
        raise MedAIError(f"{source} has no free-text column; name the column holding the notes with --text-column")
    if len(candidates) > 1:
        raise MedAIError(f"{source} has several free-text columns {candidates}; choose one with --text-column")
    return candidates[0]


def folder_dataset(path: Path, folders: list[Path]) -> Dataset:
    texts, labels, names = [], [], []
    for folder in folders:
        for file in sorted(folder.glob("*.txt")):
            texts.append(read_text_file(file))
            labels.append(folder.name)
            names.append(str(file.relative_to(path)))
    texts = check_texts(texts, str(path), names)
    return Dataset(X=texts, y=pd.Series(labels, name="label"), target_column="label",
                   input_schema={"fields": [{"name": TEXT_FIELD, "kind": "text"}], "text_column": TEXT_FIELD},
                   source=str(path), fingerprint=fingerprint(texts, labels), classes=[f.name for f in folders],
                   notes=[f"{len(texts)} text files in {len(folders)} class folders"],
                   record_keys=np.array([hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()
                                         for t in texts]))


def read_dataset(path: Path, options) -> Dataset:
    """A user's text data set from ``--data`` (with ``--val-data``/``--test-data`` as fixed splits)."""
    fmt = options.extra.get("format")
    one_type = options.extra.get("one_type")
    base = _read_one(path, options, fmt, one_type)
    extra_parts = [(name, options.extra.get(f"{name}_data")) for name in ("val", "test")]
    extra_parts = [(name, Path(p)) for name, p in extra_parts if p]
    if not extra_parts:
        return base
    parts = {"train": np.arange(len(base))}
    X, ys, notes = list(base.X), [base.y], list(base.notes)
    for name, extra_path in extra_parts:
        other = _read_one(extra_path, options, fmt, one_type)
        if other.target_column != base.target_column:
            raise MedAIError(f"--{name}-data {extra_path} holds {other.target_column!r} targets, --data holds "
                             f"{base.target_column!r}")
        parts[name] = np.arange(len(X), len(X) + len(other))
        X += list(other.X)
        ys.append(other.y)
        notes += [f"{name} data {extra_path}: {n}" for n in other.notes]
    if "val" not in parts:
        raise MedAIError("--test-data needs --val-data too (the validation documents)")
    protocol = f"fixed split: train {path}, validation {options.extra.get('val_data')}"
    if "test" not in parts:
        parts["test"] = parts["val"]
        protocol += " (no --test-data: the test figures are measured on the validation documents)"
    else:
        protocol += f", test {options.extra.get('test_data')}"
    base.X, base.notes = X, notes
    base.y = [s for y in ys for s in y] if base.target_column == ENTITY_TARGET else pd.concat(ys, ignore_index=True)
    base.official_split, base.split_protocol = parts, protocol
    base.record_keys = np.array([hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest() for t in X])
    return base


def _read_one(path: Path, options, fmt: str | None, one_type: str | None) -> Dataset:
    path = Path(path)
    if not path.exists():
        raise MedAIError(f"data {path} does not exist")
    if fmt or detect_format(path):
        return corpus_dataset(read_corpus(path, fmt, one_type), str(path), [])
    folders = class_folders(path)
    if folders:
        return folder_dataset(path, folders)
    if path.is_file() and table_format(path):
        return table_dataset(path, options)
    raise MedAIError(f"{path} is not a table with a text column, a folder of class sub-folders of .txt files, a BRAT "
                     "folder, a CoNLL/BIO file or a PubTator file")


# -- inputs to predict or evaluate ------------------------------------------------------------------------

def read_inputs(path: Path, model, labelled: bool, options: dict) -> Inputs:
    path = Path(path)
    if not path.exists():
        raise MedAIError(f"input {path} does not exist")
    entities = model.kind == ENTITY_TARGET
    fmt = (options or {}).get("format")
    if fmt or detect_format(path):
        corpus = read_corpus(path, fmt, (options or {}).get("one_type"))
        texts = [d.text for d in corpus.documents]
        y = [d.span_keys() for d in corpus.documents] if labelled else None
        if labelled and not entities:
            raise MedAIError(f"{path} is an annotated corpus; model {model.name!r} classifies documents")
        return Inputs(texts, [d.id for d in corpus.documents], "document", y, corpus.report())
    folders = class_folders(path)
    if folders and not entities:
        data = folder_dataset(path, folders)
        return Inputs(data.X, None, "id", data.y if labelled else None)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise MedAIError(f"{path} holds no .txt files")
        if labelled:
            raise MedAIError(f"{path} has no labels: give a table with the target column, class folders or a corpus")
        return Inputs(check_texts([read_text_file(f) for f in files], str(path)),
                      [str(f.relative_to(path)) for f in files], "file")
    if path.is_file() and table_format(path) and path.suffix.lower() != ".txt":
        return inputs_from_frame(read_table(path), model, str(path), labelled)
    if labelled:
        raise MedAIError(f"{path} is one plain text; evaluating needs labels (a table, class folders or a corpus)")
    return Inputs(check_texts([read_text_file(path)], str(path)), [path.name], "file")


def inputs_from_frame(frame: pd.DataFrame, model, source: str, labelled: bool = False) -> Inputs:
    schema = model.input_schema
    column = schema.get("text_column") or TEXT_FIELD
    if column not in frame.columns:
        column = TEXT_FIELD if TEXT_FIELD in frame.columns else column
    if column not in frame.columns:
        raise MedAIError(f"{source} has no text column {schema.get('text_column')!r} (nor {TEXT_FIELD!r})")
    y, notes = None, []
    if labelled:
        if model.kind == ENTITY_TARGET:
            raise MedAIError(f"{source}: an entity model is evaluated on an annotated corpus (BRAT, CoNLL, PubTator)")
        frame, y, notes = labelled_records(frame, model, source)
    id_column = schema.get("id_column")
    ids = frame[id_column].tolist() if id_column and id_column in frame.columns else None
    if len(frame) == 0:
        raise MedAIError(f"{source} has no records")
    return Inputs(check_texts(frame[column].tolist(), source, ids), ids, id_column or "id", y, notes)
