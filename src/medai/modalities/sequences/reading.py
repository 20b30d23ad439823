"""Reading sequences: FASTA/FASTQ (Biopython; labels from the header by a pattern, or from a label table keyed
by record id) and tables (CSV/Parquet/...) with a sequence column. The alphabet (DNA, RNA, protein) is
detected and stated; soft-masked (lower-case) letters are upper-cased; gaps and white space removed; records
with characters outside the alphabet are reported one by one and left out (``--invalid error`` refuses the
file instead); lengths are summarised, and wildly varying lengths are a warning.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from medai.data.dataset import Dataset, Inputs
from medai.data.tables import read_table, table_format
from medai.errors import MedAIError, NotFoundError
from medai.modalities.sequences.alphabet import Alphabet, clean, detect, invalid_reason

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".ffn", ".faa", ".frn", ".fas", ".seq")
FASTQ_SUFFIXES = (".fq", ".fastq")
SEQUENCE_FIELD = "sequence"  # the one field of a record in the service: {"records": [{"sequence": "ACGT..."}]}
SEQUENCE_NAMES = ("sequence", "seq", "sequences", "dna", "rna", "protein", "nucleotides", "aa_sequence",
                  "peptide", "read")
ID_NAMES = ("id", "record_id", "name", "sequence_id", "seq_id", "accession", "identifier")
DEFAULT_PATTERN = r"(?:^|[\s|;])(?:label|class|y)=([^\s|;]+)"
REPORT_ROWS = 10
VARYING = 10  # longest / shortest above which lengths "vary wildly"
MIN_SEQUENCE = 8  # a table column whose values are shorter is not taken for sequences


def sequence_format(path: Path) -> str | None:
    """``fasta`` or ``fastq`` by the file name (``.gz`` allowed), else None."""
    name = path.name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    suffix = Path(name).suffix
    return "fasta" if suffix in FASTA_SUFFIXES else "fastq" if suffix in FASTQ_SUFFIXES else None


def _sniff_fasta(path: Path) -> bool:
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    return line.startswith(">")
    except OSError:
        return False
    return False


def looks_like_sequences(series: pd.Series) -> bool:
    """Most values are single words of sequence letters at least 8 long (DNA/RNA or protein)."""
    values = series.dropna()
    values = values[values.map(lambda v: isinstance(v, str))].str.strip()
    if values.empty or len(values) < 0.5 * len(series.dropna()):
        return False
    sample = values.head(500)
    letters = sample.str.fullmatch(r"[A-Za-z*\-.]+")
    if letters.mean() < 0.95 or sample.str.len().median() < MIN_SEQUENCE:
        return False
    nucleotides = sample.str.upper().map(lambda s: sum(s.count(c) for c in "ACGTUN") / max(1, len(s)))
    if nucleotides.median() >= 0.9:
        return True
    return bool(sample.str.len().median() >= 20 and sample.nunique() >= 0.5 * len(sample))


def find_sequence_column(frame: pd.DataFrame, requested: str | None, source: str, exclude=()) -> str | None:
    if requested:
        if requested not in frame.columns:
            raise MedAIError(f"--sequence-column {requested!r} is not in {source}; columns are: {list(frame.columns)}")
        return requested
    candidates = [c for c in frame.columns if c not in exclude and frame[c].dtype == object]
    named = [c for c in candidates if str(c).strip().lower() in SEQUENCE_NAMES]
    for column in named + [c for c in candidates if c not in named]:
        if looks_like_sequences(frame[column]):
            return column
    return None


def claims_file(path: Path, options) -> int:
    if not path.is_file():
        return 0
    if sequence_format(path) or _sniff_fasta(path):
        return 2
    if not table_format(path):
        return 0
    if (options.extra or {}).get("sequence_column"):
        return 2
    try:
        frame = read_table(path) if path.stat().st_size < 50_000_000 else None
    except MedAIError:
        return 0
    if frame is None:
        return 0
    frame = _tidy(frame)
    return 2 if find_sequence_column(frame.head(500), None, str(path), exclude=_targets(options)) else 0


def _targets(options) -> set[str]:
    return {t.strip() for t in str(getattr(options, "target", None) or "").split(",") if t.strip()}


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Column names and text values without the padding some files carry (UCI's splice.data)."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: v.strip() if isinstance(v, str) else v)
    return frame


# -- FASTA / FASTQ --------------------------------------------------------------------------------------------
def read_fasta(path: Path) -> tuple[list[str], list[str], list[str]]:
    """Record ids, descriptions (the whole header) and raw sequences of a FASTA/FASTQ file."""
    from Bio import SeqIO

    if not path.exists():
        raise NotFoundError(f"data file {path} does not exist")
    fmt = sequence_format(path) or "fasta"
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    ids, descriptions, sequences = [], [], []
    try:
        with opener(path, "rt") as handle:
            for record in SeqIO.parse(handle, fmt):
                ids.append(record.id)
                descriptions.append(record.description)
                sequences.append(str(record.seq))
    except (ValueError, UnicodeDecodeError) as error:
        raise MedAIError(f"{path} is not a readable {fmt.upper()} file: {error}") from None
    if not ids:
        raise MedAIError(f"{path} holds no {fmt.upper()} records (expected lines starting with "
                         f"{'>' if fmt == 'fasta' else '@'} followed by sequences)")
    return ids, descriptions, sequences


HEADER_CONVENTIONS = (DEFAULT_PATTERN, r"\|([^|\s]+)\s*$", r"^\S+\s+(\S+)\s*$")


def _header_convention(descriptions: list[str]) -> str:
    """The first header convention that gives every record a label with few distinct values (``label=X``,
    ``id|X``, ``id X``); else the default, which then reports what to give."""
    limit = max(2, min(50, len(descriptions) // 5))
    for pattern in HEADER_CONVENTIONS:
        regex = re.compile(pattern)
        matches = [regex.search(d) for d in descriptions]
        if all(matches) and len({m.group(1) for m in matches}) <= limit:
            return pattern
    return DEFAULT_PATTERN


def labels_from_pattern(ids: list[str], descriptions: list[str], pattern: str | None,
                        source: str) -> tuple[list[str | None], list[str]]:
    """A label per record from its FASTA header (group ``label`` or the first group of ``pattern``)."""
    given = pattern is not None
    pattern = pattern or _header_convention(descriptions)
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise MedAIError(f"--label-pattern {pattern!r} is not a regular expression: {error}") from None
    if regex.groups < 1:
        raise MedAIError(f"--label-pattern {pattern!r} needs a group that captures the label, e.g. 'class=(\\w+)'")
    group = "label" if "label" in regex.groupindex else 1
    labels = []
    for description in descriptions:
        match = regex.search(description)
        labels.append(match.group(group) if match and match.group(group) else None)
    found = sum(label is not None for label in labels)
    if found == 0:
        if not given:
            raise MedAIError(f"the records of {source} need labels: give --labels FILE (a table keyed by record id) "
                             "or --label-pattern REGEX that captures the label from each header (e.g. "
                             f"'\\|(\\w+)$'); header of the first record: {descriptions[0][:80]!r}")
        raise MedAIError(f"--label-pattern {pattern!r} matched no header in {source}; first header: "
                         f"{descriptions[0][:80]!r}")
    notes = [f"labels taken from the FASTA headers by the pattern {pattern!r}"]
    return labels, notes


def labels_from_file(ids: list[str], path: Path, id_column: str | None, target: str | None,
                     source: str) -> tuple[list[str | None], str, list[str]]:
    """A label per record from a label table keyed by record id; the target column's name."""
    frame = _tidy(read_table(path))
    id_column = id_column or next((c for c in frame.columns if c.lower() in ID_NAMES), frame.columns[0])
    if id_column not in frame.columns:
        raise MedAIError(f"--id-column {id_column!r} is not in the label file {path}; columns: {list(frame.columns)}")
    others = [c for c in frame.columns if c != id_column]
    if target is None:
        if len(others) != 1:
            raise MedAIError(f"the label file {path} has several columns besides {id_column!r} ({others}): name the "
                             "label column with --target")
        target = others[0]
    if target not in frame.columns:
        raise MedAIError(f"--target {target!r} is not in the label file {path}; columns: {list(frame.columns)}")
    keys = frame[id_column].astype(str)
    duplicated = keys[keys.duplicated()].unique().tolist()
    if duplicated:
        raise MedAIError(f"the label file {path} repeats record id(s) {duplicated[:5]} in column {id_column!r}")
    lookup = dict(zip(keys, frame[target], strict=True))
    labels = [lookup.get(i) for i in ids]
    labels = [None if label is None or (isinstance(label, float) and np.isnan(label)) else label for label in labels]
    missing = [i for i, label in zip(ids, labels, strict=True) if label is None]
    if len(missing) == len(ids):
        raise MedAIError(f"no record id of {source} is in column {id_column!r} of the label file {path} (first "
                         f"ids in the FASTA: {ids[:3]}; in the label file: {keys.head(3).tolist()})")
    notes = [f"labels from {path.name}, column {target!r}, keyed by {id_column!r}"]
    unused = len(set(keys) - set(ids))
    if unused:
        notes.append(f"{unused} id(s) of the label file have no sequence in {source}")
    return labels, target, notes


# -- building the data set -------------------------------------------------------------------------------------
def check_sequences(ids: list, raw: list, options: dict, alphabet: Alphabet | None = None,
                    drop: bool = True) -> tuple[list[str], np.ndarray, Alphabet, list[str], list[str]]:
    """Cleaned sequences, the positions of the valid ones, the alphabet, notes and warnings."""
    cleaned = clean(raw)
    notes, warnings = [], []
    if alphabet is None:
        typed = [s for s in cleaned.sequences if s]
        if not typed:
            raise MedAIError("no record holds a sequence")
        name, said = detect(typed, options.get("alphabet"))
        notes += said
        ambiguity = (options.get("ambiguity") or "keep").lower()
        if ambiguity not in ("keep", "expand"):
            raise MedAIError(f"--ambiguity must be keep or expand, got {ambiguity!r}")
        alphabet = Alphabet(name, ambiguity)
        notes.append(f"alphabet: {alphabet.describe()}")
    if cleaned.lowercase:
        notes.append(f"{cleaned.lowercase} record(s) had lower-case (soft-masked) letters: read as upper case")
    if cleaned.gaps:
        notes.append(f"{cleaned.gaps} record(s) held gaps ('-', '.') or white space: removed")
    reasons = [invalid_reason(s, alphabet) for s in cleaned.sequences]
    bad = [i for i, r in enumerate(reasons) if r]
    if bad:
        listed = "; ".join(f"record {ids[i]!s}: {reasons[i]}" for i in bad[:REPORT_ROWS])
        more = f"; {len(bad) - REPORT_ROWS} more" if len(bad) > REPORT_ROWS else ""
        if not drop or len(bad) == len(cleaned.sequences):
            raise MedAIError(f"{len(bad)} of {len(raw)} record(s) are not valid {alphabet.name.upper()} sequences: "
                             f"{listed}{more}")
        warnings.append(f"{len(bad)} record(s) left out, not valid {alphabet.name.upper()}: {listed}{more}")
    keep = np.array([i for i, r in enumerate(reasons) if not r], dtype=int)
    return cleaned.sequences, keep, alphabet, notes, warnings


def length_summary(sequences: list[str]) -> tuple[dict, list[str], list[str]]:
    lengths = np.array([len(s) for s in sequences])
    summary = {"min": int(lengths.min()), "median": int(np.median(lengths)), "max": int(lengths.max()),
               "p95": int(np.percentile(lengths, 95))}
    if summary["min"] == summary["max"]:
        return summary, [f"every sequence is {summary['min']} long"], []
    note = (f"sequence lengths {summary['min']}-{summary['max']} (median {summary['median']}): k-mer features do "
            "not depend on length (spectrum counts are divided by the number of k-mers); the CNN pads shorter "
            f"sequences with zeros and keeps the centre {summary['p95']} positions of longer ones (the 95th "
            "percentile of the training lengths)")
    warnings = []
    if summary["max"] > VARYING * max(1, summary["min"]):
        warnings.append(f"sequence lengths vary wildly ({summary['min']} to {summary['max']}): check that the "
                        "records are comparable (e.g. windows of one size around a site)")
    return summary, [note], warnings


def build_dataset(ids: list, raw: list, labels: list, target: str, options, source: str, *,
                  sequence_column: str | None, license: str = "user data", citation: str = "",
                  notes: list[str] | None = None) -> Dataset:
    extra = options.extra or {}
    drop = (extra.get("invalid") or "drop").lower()
    if drop not in ("drop", "error"):
        raise MedAIError(f"--invalid must be drop (leave such records out, reported) or error, got {drop!r}")
    notes = list(notes or [])
    unlabelled = [i for i, label in enumerate(labels)
                  if label is None or (isinstance(label, float) and np.isnan(label))]
    if unlabelled:
        shown = ", ".join(str(ids[i]) for i in unlabelled[:5])
        notes.append(f"{len(unlabelled)} record(s) have no label and are left out (e.g. {shown})")
    unlabelled_set = set(unlabelled)
    labelled = np.array([i for i in range(len(ids)) if i not in unlabelled_set], dtype=int)
    ids = [ids[i] for i in labelled]
    raw = [raw[i] for i in labelled]
    labels = [labels[i] for i in labelled]
    sequences, keep, alphabet, said, warnings = check_sequences(ids, raw, extra, drop=drop == "drop")
    notes += said
    sequences = [sequences[i] for i in keep]
    y = pd.Series([labels[i] for i in keep], name=target)
    y = y.map(lambda v: v.strip() if isinstance(v, str) else v)
    summary, said, warned = length_summary(sequences)
    notes += said
    warnings += warned
    counts = Counter(sequences)
    repeated = sum(1 for c in counts.values() if c > 1)
    if repeated:
        notes.append(f"{repeated} sequence(s) occur more than once; the report counts copies across the splits")
    keys = np.array([hashlib.sha256(s.encode()).hexdigest()[:16] for s in sequences])
    fingerprint = hashlib.sha256("\n".join(f"{k}\t{v}" for k, v in zip(keys, y.astype(str), strict=True))
                                 .encode()).hexdigest()
    schema = {"fields": [{"name": SEQUENCE_FIELD, "kind": "text"}], "alphabet": alphabet.name,
              "ambiguity": alphabet.ambiguity, "lengths": summary, "sequence_column": sequence_column}
    return Dataset(X=np.array(sequences, dtype=object), y=y, target_column=target, input_schema=schema,
                   source=source, license=license, citation=citation, fingerprint=fingerprint, record_keys=keys,
                   notes=notes, warnings=warnings,
                   options={"alphabet": alphabet.name, "ambiguity": alphabet.ambiguity, "lengths": summary})


def read_user_data(path: Path, options) -> Dataset:
    extra = options.extra or {}
    if sequence_format(path) or _sniff_fasta(path):
        ids, descriptions, raw = read_fasta(path)
        if extra.get("labels"):
            if extra.get("label_pattern"):
                raise MedAIError("give either --labels FILE or --label-pattern REGEX, not both")
            labels, target, notes = labels_from_file(ids, Path(extra["labels"]), options.id_column, options.target,
                                                      str(path))
        else:
            labels, notes = labels_from_pattern(ids, descriptions, extra.get("label_pattern"), str(path))
            target = options.target or "label"
        return build_dataset(ids, raw, labels, target, options, str(path), sequence_column=None, notes=notes)
    frame = _tidy(read_table(path))
    return dataset_from_frame(frame, options, str(path))


def dataset_from_frame(frame: pd.DataFrame, options, source: str, *, target: str | None = None,
                       sequence_column: str | None = None, license: str = "user data", citation: str = "") -> Dataset:
    extra = options.extra or {}
    if frame.empty:
        raise MedAIError(f"{source} holds no records")
    target = target or options.target
    if not target:
        raise MedAIError(f"name the label column of {source} with --target (columns: {list(frame.columns)})")
    if target not in frame.columns:
        raise MedAIError(f"--target {target!r} is not a column of {source}; columns are: {list(frame.columns)}")
    column = find_sequence_column(frame, sequence_column or extra.get("sequence_column"), source, exclude={target})
    if column is None:
        raise MedAIError(f"no column of {source} holds sequences (letters of DNA, RNA or protein, at least "
                         f"{MIN_SEQUENCE} long); name it with --sequence-column (columns: {list(frame.columns)})")
    id_column = options.id_column if options.id_column in frame.columns else None
    ids = (frame[id_column].astype(str).tolist() if id_column else [f"row {i + 2}" for i in range(len(frame))])
    labels = frame[target].tolist()
    return build_dataset(ids, frame[column].tolist(), labels, target, options, source, sequence_column=column,
                         license=license, citation=citation, notes=[f"sequences from column {column!r}"])


# -- inputs to predict -------------------------------------------------------------------------------------------
def model_alphabet(model) -> Alphabet:
    schema = model.input_schema
    return Alphabet(schema.get("alphabet", "dna"), schema.get("ambiguity", "keep"))


def checked(ids: list, raw: list, model, source: str) -> np.ndarray:
    """Cleaned sequences for a model; any invalid record is an error naming it."""
    if not raw:
        raise MedAIError(f"{source} holds no sequences")
    sequences, _keep, _alphabet, _notes, _warnings = check_sequences(ids, raw, {}, model_alphabet(model), drop=False)
    return np.array(sequences, dtype=object)


def read_inputs(path: Path, model, labelled: bool, options: dict) -> Inputs:
    if sequence_format(path) or _sniff_fasta(path):
        ids, descriptions, raw = read_fasta(path)
        y = None
        if labelled:
            if options.get("labels"):
                labels, _target, _ = labels_from_file(ids, Path(options["labels"]), None, model.target.column,
                                                      str(path))
            else:
                labels, _ = labels_from_pattern(ids, descriptions, options.get("label_pattern"), str(path))
            missing = [i for i, label in zip(ids, labels, strict=True) if label is None]
            if missing:
                raise MedAIError(f"{len(missing)} record(s) of {path} have no label (e.g. {missing[:5]})")
            y = pd.Series(labels, name=model.target.column)
        return Inputs(checked(ids, raw, model, str(path)), ids, "id", y)
    frame = _tidy(read_table(path))
    return inputs_from_frame(frame, model, str(path), labelled, options.get("sequence_column"))


def inputs_from_frame(frame: pd.DataFrame, model, source: str, labelled: bool = False,
                      sequence_column: str | None = None) -> Inputs:
    column = sequence_column or model.input_schema.get("sequence_column")
    if column not in frame.columns:
        column = SEQUENCE_FIELD if SEQUENCE_FIELD in frame.columns else find_sequence_column(frame, None, source)
    if column is None:
        raise MedAIError(f"no column of {source} holds sequences; name it with --sequence-column "
                         f"(columns: {list(frame.columns)})")
    id_name = next((c for c in frame.columns if str(c).lower() in ID_NAMES), None)
    ids = frame[id_name].astype(str).tolist() if id_name else [f"row {i + 2}" for i in range(len(frame))]
    y = None
    if labelled:
        target = model.target.column
        if target not in frame.columns:
            raise MedAIError(f"{source} has no column {target!r} with the true labels")
        y = frame[target].map(lambda v: v.strip() if isinstance(v, str) else v)
    return Inputs(checked(ids, frame[column].tolist(), model, source), ids, id_name or "row", y)
