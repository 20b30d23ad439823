"""Reading irregular time series into :class:`Stays`.

Two layouts:

- the **PhysioNet 2012 challenge** layout: one ``<RecordID>.txt`` per stay (``Time,Parameter,Value``, ``hh:mm``
  since ICU admission), in a folder or read straight from a ``.tar.gz``; the six descriptors at 00:00 (Age,
  Gender, Height, ICUType, Weight; -1 = missing) become observations at hour 0, RecordID is the stay id;
- a **long table** (CSV, TSV or Parquet): one row per ``(stay or subject id, time, variable or code, value)``,
  which covers the MEDS event layout (``subject_id, time, code, numeric_value``; codes without a value count as
  1.0, an occurrence). Time is hours (a number) or a timestamp (then hours since the stay's first row).

Both are read with polars, lazily for tables (only the four columns are materialised), so a cohort of 100,000
patients fits in memory. Values outside a variable's possible range are flagged in the notes and left out, an
observation before the index time is left out, and a variable recorded in several units keeps its most common
unit (the others are flagged and left out): nothing doubtful is silently used.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medai.errors import MedAIError, NotFoundError
from medai.modalities.longitudinal.ranges import describe_flagged, out_of_range
from medai.modalities.longitudinal.stays import Stays

CHALLENGE_HEADER = "Time,Parameter,Value"
CHALLENGE_HOURS = 48.0  # the challenge gives the first 48 hours of every stay
DESCRIPTORS = ("Age", "Gender", "Height", "ICUType", "Weight")
ID_NAMES = ("stay_id", "subject_id", "patient_id", "recordid", "record_id", "icustay_id", "hadm_id", "id", "patient")
TIME_NAMES = ("time", "hours", "hour", "charttime", "timestamp", "datetime", "t", "offset")
VARIABLE_NAMES = ("variable", "code", "parameter", "name", "itemid", "item", "label", "measurement")
VALUE_NAMES = ("value", "numeric_value", "valuenum", "val")
UNIT_NAMES = ("unit", "units", "valueuom", "uom")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq", ".txt")


@dataclass
class ReadStays:
    stays: Stays
    notes: list[str] = field(default_factory=list)
    id_column: str = "stay_id"
    origin: dict[str, object] | None = None  # per stay, the timestamp of hour 0 (when times were timestamps)
    window_hours: float | None = None  # the observation window every stay is scored at (None: its last hour)


# -- which layout ---------------------------------------------------------------------------------------------

def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith((".tar.gz", ".tgz", ".tar"))


def challenge_layout(path: Path) -> bool:
    """A folder or archive of per-stay files with the challenge's header."""
    path = Path(path)
    if path.is_dir():
        first = next(iter(sorted(path.glob("*.txt"))), None)
        return first is not None and first.read_text(errors="replace")[:len(CHALLENGE_HEADER)] == CHALLENGE_HEADER
    if is_archive(path):
        try:
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.isfile() and member.name.endswith(".txt"):
                        head = archive.extractfile(member).read(len(CHALLENGE_HEADER)).decode(errors="replace")
                        return head == CHALLENGE_HEADER
        except (tarfile.TarError, OSError, EOFError):
            return False
    return False


def long_table_columns(path: Path) -> dict[str, str] | None:
    """The id, time, variable and value columns of a long table (``unit`` too when present), or ``None``."""
    try:
        names = list(_scan(path).collect_schema().names())
    except Exception:  # noqa: BLE001 - not a table polars reads: not ours
        return None
    return match_columns(names)


def match_columns(names: list[str]) -> dict[str, str] | None:
    lower = {str(n).strip().lower(): n for n in names}
    found = {}
    for role, options in (("id", ID_NAMES), ("time", TIME_NAMES), ("variable", VARIABLE_NAMES),
                          ("value", VALUE_NAMES), ("unit", UNIT_NAMES)):
        hit = next((lower[o] for o in options if o in lower), None)
        if hit is not None:
            found[role] = hit
    return found if {"id", "time", "variable", "value"} <= set(found) else None


# -- the challenge layout ---------------------------------------------------------------------------------------

def _challenge_files(path: Path):
    """(stay id, file bytes) for every per-stay file of a folder or archive, in name order."""
    if path.is_dir():
        for file in sorted(path.glob("*.txt")):
            yield file.stem, file.read_bytes()
        return
    try:
        with tarfile.open(path) as archive:
            members = sorted((m for m in archive if m.isfile() and m.name.endswith(".txt")), key=lambda m: m.name)
            for member in members:
                yield Path(member.name).stem, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise MedAIError(f"{path} is not a readable tar archive of stays: {exc}") from None


def read_challenge(path: Path) -> ReadStays:
    import polars as pl

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"stays {path} do not exist")
    chunks, ids, bad = [], [], []
    for stay_id, content in _challenge_files(path):
        text = content.decode("utf-8", errors="replace")
        if not text.startswith(CHALLENGE_HEADER):
            bad.append(stay_id)
            continue
        ids.append(stay_id)
        body = text[len(CHALLENGE_HEADER):].strip("\r\n")
        if body:
            chunks.append(stay_id + "," + body.replace("\r\n", "\n").replace("\n", "\n" + stay_id + ","))
    if not ids:
        raise MedAIError(f"{path} holds no stay files with the header {CHALLENGE_HEADER!r}")
    notes = [f"{len(ids)} stays read from {path.name} (PhysioNet 2012 challenge layout)"]
    if bad:
        notes.append(f"{len(bad)} file(s) without the header {CHALLENGE_HEADER!r} left out (first: {bad[0]}.txt)")
    frame = pl.read_csv(io.StringIO("\n".join(chunks)), has_header=False, new_columns=["stay", "time", "parameter",
                        "value"], schema_overrides={"stay": pl.Utf8, "time": pl.Utf8, "parameter": pl.Utf8,
                                                    "value": pl.Utf8}, truncate_ragged_lines=True)
    frame = frame.filter(pl.col("parameter") != "RecordID")
    parts = frame["time"].str.split_exact(":", 1)
    hours = (parts.struct.field("field_0").cast(pl.Float64, strict=False)
             + parts.struct.field("field_1").cast(pl.Float64, strict=False) / 60.0)
    value = frame["value"].cast(pl.Float64, strict=False)
    frame = frame.with_columns(hours=hours, number=value)
    unreadable = frame.filter(pl.col("hours").is_null() | pl.col("number").is_null()).height
    if unreadable:
        notes.append(f"{unreadable} observation(s) with an unreadable time or value left out")
    frame = frame.filter(pl.col("hours").is_not_null() & pl.col("number").is_not_null())
    missing = frame.filter(pl.col("parameter").is_in(DESCRIPTORS) & (pl.col("number") == -1) & (pl.col("hours") == 0))
    if missing.height:
        notes.append(f"{missing.height} descriptor(s) recorded as -1 (missing) left out")
    frame = frame.filter(~(pl.col("parameter").is_in(DESCRIPTORS) & (pl.col("number") == -1)))
    stays = Stays.from_long(frame["stay"].to_numpy(), frame["hours"].to_numpy(), frame["parameter"].to_numpy(),
                            frame["number"].to_numpy(), ids=np.array(ids), horizon=CHALLENGE_HOURS)
    stays, more = clean(stays)
    return ReadStays(stays, notes + more, id_column="RecordID", window_hours=CHALLENGE_HOURS)


# -- long tables ----------------------------------------------------------------------------------------------

def _scan(path: Path):
    import polars as pl

    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return pl.scan_parquet(path)
    separator = "\t" if name.endswith((".tsv", ".tsv.gz")) else ","
    return pl.scan_csv(path, separator=separator, infer_schema_length=10000)


def read_long_table(path: Path, window_hours: float | None = None) -> ReadStays:
    """A long table (any row order) -> stays; ``window_hours`` keeps the first hours of each stay and scores
    every stay at that hour (default: each stay's last observation)."""
    import polars as pl

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"data file {path} does not exist")
    if path.stat().st_size == 0:
        raise MedAIError(f"data file {path} is empty; expected a header and rows of (id, time, variable, value)")
    try:
        scan = _scan(path)
        names = list(scan.collect_schema().names())
    except Exception as exc:  # noqa: BLE001 - polars raises many types for unreadable files
        raise MedAIError(f"{path} is not a table polars can read: {str(exc).splitlines()[0]}") from None
    columns = match_columns(names)
    if columns is None:
        raise MedAIError(f"{path} is not a long table: expected columns for the stay or subject id "
                         f"({'/'.join(ID_NAMES[:3])}), time ({'/'.join(TIME_NAMES[:3])}), variable "
                         f"({'/'.join(VARIABLE_NAMES[:3])}) and value ({'/'.join(VALUE_NAMES[:2])}); found {names}")
    selected = [columns[r] for r in ("id", "time", "variable", "value", "unit") if r in columns]
    frame = scan.select(selected).rename({columns[r]: r for r in ("id", "time", "variable", "value", "unit")
                                          if r in columns}).collect()
    if frame.height == 0:
        raise MedAIError(f"{path} has a header but no observations")
    notes: list[str] = []
    frame = frame.with_columns(pl.col("id").cast(pl.Utf8), pl.col("variable").cast(pl.Utf8))
    frame, origin = _hours(frame, notes)
    value = frame["value"]
    if value.dtype == pl.Utf8:
        value = value.cast(pl.Float64, strict=False)
    frame = frame.with_columns(number=value.cast(pl.Float64, strict=False))
    events = frame.filter(pl.col("number").is_null() & pl.col("value").is_null()).height
    if events:  # MEDS: a code without a value is an occurrence
        notes.append(f"{events} event(s) without a numeric value counted as occurrences (value 1)")
    unreadable = frame.filter(pl.col("number").is_null() & pl.col("value").is_not_null()).height
    if unreadable:
        notes.append(f"{unreadable} observation(s) whose value is not a number left out")
    frame = frame.filter(~(pl.col("number").is_null() & pl.col("value").is_not_null()))
    frame = frame.with_columns(pl.col("number").fill_null(1.0))
    if "unit" in frame.columns:
        frame = _one_unit_per_variable(frame, notes)
    ids = np.array(frame["id"].unique(maintain_order=False).sort().to_list(), dtype=object).astype(str)
    before = frame.filter(pl.col("hours") < 0).height
    if before:
        notes.append(f"{before} observation(s) before the stay's index time (negative hours) left out")
        frame = frame.filter(pl.col("hours") >= 0)
    if window_hours is not None:
        later = frame.filter(pl.col("hours") > window_hours).height
        if later:
            notes.append(f"{later} observation(s) after the {window_hours:g}-hour observation window left out")
        frame = frame.filter(pl.col("hours") <= window_hours)
    stays = Stays.from_long(frame["id"].to_numpy(), frame["hours"].to_numpy(), frame["variable"].to_numpy(),
                            frame["number"].to_numpy(), ids=ids, horizon=window_hours)
    stays, more = clean(stays)
    notes.insert(0, f"{len(ids)} stays, {len(stays.time)} observations of {len(stays.variables)} variables read "
                    f"from {path.name} (long table: {', '.join(f'{k}={v}' for k, v in columns.items())})")
    return ReadStays(stays, notes + more, id_column=columns["id"], origin=origin, window_hours=window_hours)


def _hours(frame, notes: list[str]):
    """Hours since the index time: numbers as they are; timestamps as hours since the stay's first row."""
    import polars as pl

    dtype = frame["time"].dtype
    if dtype.is_numeric():
        return frame.with_columns(hours=pl.col("time").cast(pl.Float64)), None
    if dtype == pl.Utf8:
        parsed = frame["time"].str.to_datetime(strict=False)
        if parsed.null_count() > frame["time"].null_count():
            numeric = frame["time"].cast(pl.Float64, strict=False)
            if numeric.null_count() == frame["time"].null_count():
                return frame.with_columns(hours=numeric), None
            bad = frame.filter(parsed.is_null() & pl.col("time").is_not_null())["time"][0]
            raise MedAIError(f"time column holds {bad!r}, which is neither hours nor a timestamp")
        frame = frame.with_columns(time=parsed)
    missing = frame["time"].null_count()
    if missing:
        notes.append(f"{missing} row(s) without a time left out")
        frame = frame.filter(pl.col("time").is_not_null())
    first = frame.group_by("id").agg(pl.col("time").min().alias("origin"))
    frame = frame.join(first, on="id").with_columns(
        hours=(pl.col("time") - pl.col("origin")).dt.total_seconds() / 3600.0)
    origin = dict(zip(first["id"].to_list(), first["origin"].to_list(), strict=True))
    notes.append("timestamps converted to hours since each stay's first observation")
    return frame, origin


def _one_unit_per_variable(frame, notes: list[str]):
    import polars as pl

    counts = frame.group_by(["variable", "unit"]).len().sort(["variable", "len"], descending=[False, True])
    main = counts.group_by("variable", maintain_order=True).first().select("variable", pl.col("unit").alias("main"))
    frame = frame.join(main, on="variable", how="left")
    other = frame.filter(pl.col("unit").is_not_null() & pl.col("main").is_not_null()
                         & (pl.col("unit") != pl.col("main")))
    if other.height:
        which = other.group_by(["variable", "unit"]).len().sort("len", descending=True).head(5)
        listed = ", ".join(f"{r['variable']} in {r['unit']!r} ({r['len']})" for r in which.iter_rows(named=True))
        notes.append(f"{other.height} observation(s) in a unit other than their variable's usual one flagged and "
                     f"left out ({listed})")
        frame = frame.filter(~(pl.col("unit").is_not_null() & pl.col("main").is_not_null()
                               & (pl.col("unit") != pl.col("main"))))
    return frame.drop("main")


def clean(stays: Stays) -> tuple[Stays, list[str]]:
    """Leave out values outside their variable's possible range (named in the notes); note empty stays."""
    notes = []
    flagged = out_of_range(stays.variables, stays.var, stays.value)
    if flagged.any():
        notes.append(f"{int(flagged.sum())} observation(s) outside the physiologically possible range flagged and "
                     f"left out: {describe_flagged(stays.variables, stays.var, flagged)}")
        keep = ~flagged
        counts = np.bincount(stays.rows()[keep], minlength=len(stays))
        stays = Stays(stays.ids, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), stays.time[keep],
                      stays.var[keep], stays.value[keep], stays.variables, stays.horizon)
    empty = stays.ids[stays.lengths == 0]
    if len(empty):
        notes.append(f"{len(empty)} stay(s) have no observations (scored from the absence of data): "
                     f"{', '.join(map(str, empty[:5]))}" + (" ..." if len(empty) > 5 else ""))
    return stays, notes


def read_stays(path: Path, window_hours: float | None = None) -> ReadStays:
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"stays {path} do not exist")
    if challenge_layout(path):
        read = read_challenge(path)
        if window_hours is not None:
            read.stays, read.window_hours = read.stays.until(window_hours), window_hours
        return read
    if path.is_dir() or is_archive(path):
        raise MedAIError(f"{path} is a folder or archive but not of stay files with the header {CHALLENGE_HEADER!r}; "
                         "give one file per stay in that layout, or a long table (id, time, variable, value)")
    return read_long_table(path, window_hours)


# -- labels ---------------------------------------------------------------------------------------------------

LABEL_DEFAULTS = ("In-hospital_death", "boolean_value", "label", "outcome", "target")
EVENT_TIME_COLUMNS = ("event_hours", "hours_to_event", "Survival")


def read_labels(path: Path, target: str | None, ids: np.ndarray, id_hint: str | None = None
                ) -> tuple[pd.Series, str, pd.DataFrame]:
    """The target of every stay of ``ids`` (NaN where the labels file has none), the target's name, and the
    labels table indexed by stay id (for event times and subgroups)."""
    from medai.data.tables import read_table

    path = Path(path)
    frame = read_table(path) if path.suffix.lower() != ".txt" else _read_txt(path)
    id_column = _label_id_column(frame, id_hint, path)
    if target is None:
        target = next((c for c in LABEL_DEFAULTS if c in frame.columns), None)
        if target is None:
            raise MedAIError(f"name the label column of {path.name} with --target; columns: {list(frame.columns)}")
    if target not in frame.columns:
        raise MedAIError(f"{path.name} has no column {target!r}; columns: {list(frame.columns)}")
    frame = frame.assign(**{id_column: frame[id_column].astype(str).str.strip()})
    duplicated = frame[id_column].duplicated()
    if duplicated.any():
        raise MedAIError(f"{path.name}: stay {frame.loc[duplicated, id_column].iloc[0]!r} has more than one label row; "
                         "expected one row per stay")
    table = frame.set_index(id_column)
    y = table[target].reindex(pd.Index(ids.astype(str)))
    return y.reset_index(drop=True), target, table


def _read_txt(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=None, engine="python")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise MedAIError(f"labels {path} are not a readable table: {exc}") from None


def _label_id_column(frame: pd.DataFrame, hint: str | None, path: Path) -> str:
    lower = {str(c).strip().lower(): c for c in frame.columns}
    for name in ((hint or "").lower(), *ID_NAMES):
        if name and name in lower:
            return lower[name]
    return frame.columns[0]


def event_hours(table: pd.DataFrame, ids: np.ndarray) -> np.ndarray | None:
    """Hours from the index time to the outcome per stay, when the labels say (PhysioNet's ``Survival`` is in days,
    -1 when the patient survived); ``None`` otherwise."""
    for column in EVENT_TIME_COLUMNS:
        if column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce").reindex(pd.Index(ids.astype(str))).to_numpy(float)
            if column == "Survival":
                values = np.where(values >= 0, values * 24.0, np.nan)
            return values
    return None
