"""Reading tables of records in the formats clinical researchers keep them in.

CSV/TSV/text (delimiter sniffed), Parquet, JSON lines, Excel (``.xlsx``), ARFF (UCI/OpenML), SAS
(``.sas7bdat``, ``.xpt``), SPSS (``.sav``, ``.zsav``) and Stata (``.dta``). Where a format carries value labels
(SPSS, Stata, SAS with its format catalogue beside the data), the labels replace the codes, so a column reads
``female``/``male`` rather than ``1``/``2``. Every failure is a :class:`MedAIError` naming the file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from medai.errors import MedAIError, NotFoundError

MISSING_TOKENS = ["", "?", "NA", "N/A", "na", "nan", "NaN", "null", "None"]
FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "text", ".data": "text", ".parquet": "parquet",
    ".pq": "parquet", ".jsonl": "jsonl", ".json": "json", ".xlsx": "excel", ".xlsm": "excel", ".arff": "arff",
    ".sas7bdat": "sas", ".xpt": "xport", ".sav": "spss", ".zsav": "spss", ".dta": "stata",
}
TABLE_SUFFIXES = tuple(FORMATS) + (".csv.gz", ".tsv.gz")
DELIMITED = ("csv", "tsv", "text")  # a name, not a literal in comparisons: "text" is also a modality's name


def table_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in (".csv.gz", ".tsv.gz"):
        if name.endswith(suffix):
            return suffix[1:4]
    return FORMATS.get(path.suffix.lower())


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table of records, with clear errors for missing, empty, unreadable or ambiguous files."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"data file {path} does not exist")
    if path.is_dir():
        raise MedAIError(f"{path} is a directory; expected a table file ({', '.join(sorted(set(FORMATS)))})")
    if path.stat().st_size == 0:
        raise MedAIError(f"data file {path} is empty; expected a header row and at least one record")
    kind = table_format(path) or "csv"
    try:
        frame = _READERS[kind](path)
    except MedAIError:
        raise
    except pd.errors.EmptyDataError:
        raise MedAIError(f"data file {path} is empty; expected a header row and at least one record") from None
    except ImportError as exc:
        raise MedAIError(f"reading {path.suffix} files needs {exc.name}; install it") from None
    except Exception as exc:  # noqa: BLE001 - each library raises its own kinds
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MedAIError(f"could not read {path} as {kind.upper()}: {first[:300]}") from None
    if frame.empty or len(frame.columns) == 0:
        raise MedAIError(f"data file {path} has a header but no records")
    header = _raw_header(path, kind) or [str(c) for c in frame.columns]
    header = [str(c).strip() for c in header]
    if kind in DELIMITED and all(_is_number(c) for c in header):
        raise MedAIError(f"data file {path} has no header row (its first line holds only numbers); add a first "
                         "line with the column names")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise MedAIError(f"data file {path} repeats the column name(s) {duplicated}; names must be unique")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip() in ("?", "")
    return True


def _raw_header(path: Path, kind: str) -> list[str] | None:
    """pandas renames repeated names to ``name.1``: read the header line itself for delimited text."""
    if kind not in DELIMITED or path.name.lower().endswith(".gz"):
        return None
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    delimiter = "\t" if kind == "tsv" else _sniff(first) if kind == DELIMITED[2] else ","
    return next(csv.reader([first], delimiter=delimiter), None)


def _sniff(line: str) -> str:
    counts = {d: line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _read_text(path: Path) -> pd.DataFrame:
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    return pd.read_csv(path, sep=_sniff(first), na_values=["?"])


def _read_spss(path: Path) -> pd.DataFrame:
    import pyreadstat

    frame, _meta = pyreadstat.read_sav(str(path), apply_value_formats=True, formats_as_category=False)
    return frame


def _read_stata(path: Path) -> pd.DataFrame:
    import pyreadstat

    frame, _meta = pyreadstat.read_dta(str(path), apply_value_formats=True, formats_as_category=False)
    return frame


def _read_sas(path: Path) -> pd.DataFrame:
    import pyreadstat

    catalog = next((p for p in path.parent.glob("*.sas7bcat")), None)
    frame, _meta = pyreadstat.read_sas7bdat(str(path), catalog_file=str(catalog) if catalog else None,
                                            apply_value_formats=catalog is not None, formats_as_category=False)
    return frame


def _read_xport(path: Path) -> pd.DataFrame:
    import pyreadstat

    frame, _meta = pyreadstat.read_xport(str(path))
    return frame


def _read_excel(path: Path) -> pd.DataFrame:
    sheets = pd.read_excel(path, sheet_name=None, na_values=["?"])
    filled = [(name, sheet) for name, sheet in sheets.items() if not sheet.empty]
    if not filled:
        raise MedAIError(f"workbook {path} has no sheet with records")
    if len(filled) > 1:
        raise MedAIError(f"workbook {path} has {len(filled)} sheets with data ({[n for n, _ in filled][:5]}); "
                         "save the one to use as its own file")
    return filled[0][1]


def _read_arff(path: Path) -> pd.DataFrame:
    """ARFF through liac-arff; files that break its strict grammar (common in UCI copies: stray spaces, tabs,
    trailing commas) are read by a lenient reader that reports the offending line."""
    import arff

    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = arff.loads(text)
    except Exception:  # noqa: BLE001 - liac-arff raises BadLayout, BadDataFormat, ...
        return _lenient_arff(text, path)
    columns = [name for name, _type in data["attributes"]]
    frame = pd.DataFrame(data["data"], columns=columns)
    for name, kind in data["attributes"]:
        if isinstance(kind, str) and kind.upper() in ("NUMERIC", "REAL", "INTEGER"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def _lenient_arff(text: str, path: Path) -> pd.DataFrame:
    names: list[str] = []
    rows: list[list[str]] = []
    in_data = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        lower = line.lower()
        if not in_data and lower.startswith("@attribute"):
            rest = line[len("@attribute"):].strip()
            if rest[:1] in "'\"":
                quote = rest[0]
                names.append(rest[1:rest.index(quote, 1)])
            else:
                names.append(rest.split()[0])
        elif lower.startswith("@data"):
            in_data = True
        elif in_data:
            values = [v.strip().strip("'\"") for v in next(csv.reader(io.StringIO(line), skipinitialspace=True))]
            while len(values) > len(names) and values[-1] == "":
                values.pop()
            if len(values) != len(names):
                raise MedAIError(f"{path}, line {number}: {len(values)} values for {len(names)} attributes")
            rows.append(values)
    if not names:
        raise MedAIError(f"{path} has no @attribute lines; it is not an ARFF file")
    frame = pd.DataFrame(rows, columns=names).replace({token: np.nan for token in MISSING_TOKENS})
    for name in frame.columns:
        converted = pd.to_numeric(frame[name], errors="coerce")
        if converted.notna().sum() == frame[name].notna().sum():
            frame[name] = converted
    return frame


def _nul_row(data: bytes) -> int | None:
    at = data.find(b"\x00")
    return None if at < 0 else data.count(b"\n", 0, at)  # 0 = the header line


def read_csv_strict(source: str | Path | bytes, label: str, sep: str = ",") -> pd.DataFrame:
    """Read a delimited text table refusing what pandas would silently repair: NUL bytes (it drops them) and
    a row with more fields than the header (it turns the leading columns into an index and shifts every
    value of the table). :class:`MedAIError` naming ``label`` and the row (1 = the first record)."""
    import io
    import warnings

    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    row = _nul_row(data)
    if row is not None:
        where = "the header" if row == 0 else f"row {row}"
        raise MedAIError(f"{label}: {where} holds a NUL byte; expected a text table (CSV)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(io.BytesIO(data), sep=sep, index_col=False)
    except pd.errors.ParserWarning:
        raise MedAIError(f"{label}: {_ragged_row(data, sep)}") from None


def _ragged_row(data: bytes, sep: str) -> str:
    import csv
    import io

    reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""), delimiter=sep)
    header = next(reader, [])
    for number, fields in enumerate(reader, start=1):
        if len(fields) > len(header):
            return f"row {number} has {len(fields)} fields but the header has {len(header)}"
    return "a row has more fields than the header"


_READERS = {
    "csv": lambda p: read_csv_strict(p, f"data file {p}"),
    "tsv": lambda p: read_csv_strict(p, f"data file {p}", sep="\t"),
    "text": _read_text,
    "parquet": pd.read_parquet,
    "jsonl": lambda p: pd.read_json(p, lines=True),
    "json": lambda p: pd.read_json(p),
    "excel": _read_excel,
    "arff": _read_arff,
    "sas": _read_sas,
    "xport": _read_xport,
    "spss": _read_spss,
    "stata": _read_stata,
}
