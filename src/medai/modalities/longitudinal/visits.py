"""Visit histories: hospital admissions with their codes (diagnoses, procedures, drugs), read as two tables.

- ``visits``: one row per admission - ``subject_id``, ``visit_id``, ``start``, ``end`` (datetimes) and ``died``
  (0/1, in-hospital death; null when unknown);
- ``events``: one row per coded event - ``subject_id``, ``visit_id``, ``domain`` (``conditions``,
  ``procedures``, ``drugs``), ``code`` (a string), ``time`` (when known).

MIMIC-IV's hosp module gives them from ``patients``, ``admissions`` and ``diagnoses_icd`` / ``procedures_icd`` /
``prescriptions`` (codes as PyHealth 1.1.3's ``MIMIC4Dataset`` reads them without code mapping: the raw ICD code,
the NDC of a prescription). A generic MEDS-style event table (``subject_id, time, code`` plus the admission it
belongs to) gives them too (:func:`read_event_table`). polars scans the CSVs lazily, selecting only the needed
columns, as the ICU reader does.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from medai.errors import MedAIError, NotFoundError
from medai.modalities.longitudinal.histories import DOMAINS

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DT = pl.Datetime("us")
# MIMIC-IV hosp table -> (domain, code column, time column) as PyHealth's MIMIC4Dataset parses them
MIMIC_TABLES = {"diagnoses_icd": ("conditions", "icd_code", None),
                "procedures_icd": ("procedures", "icd_code", "chartdate"),
                "prescriptions": ("drugs", "ndc", "starttime")}


def _table(root: Path, name: str) -> Path:
    for suffix in (".csv.gz", ".csv", ".parquet"):
        path = root / f"{name}{suffix}"
        if path.is_file():
            return path
    raise NotFoundError(f"MIMIC-IV table {name}.csv(.gz) not found under {root} (the hosp module's {name} is "
                        "needed for visit histories)")


def _scan(path: Path, columns: list[str]) -> pl.LazyFrame:
    if path.name.endswith(".parquet"):
        frame = pl.scan_parquet(path)
    else:
        frame = pl.scan_csv(path, infer_schema=False)  # every column as text: codes keep their leading zeros
    names = frame.collect_schema().names()
    missing = [c for c in columns if c not in names]
    if missing:
        raise MedAIError(f"{path}: column(s) {', '.join(missing)} missing; found {', '.join(names)}")
    return frame.select(columns)


def _datetime(column: str) -> pl.Expr:
    text = pl.col(column).cast(pl.Utf8)
    return pl.coalesce(text.str.strptime(_DT, TIME_FORMAT, strict=False),
                       text.str.strptime(_DT, "%Y-%m-%d", strict=False))


def mimic_visits(root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(visits, events)`` of a MIMIC-IV folder (``hosp/`` inside it, or the hosp folder itself)."""
    root = Path(root)
    hosp = root / "hosp" if (root / "hosp").is_dir() else root
    visits = (_scan(_table(hosp, "admissions"), ["subject_id", "hadm_id", "admittime", "dischtime",
                                                 "hospital_expire_flag"])
              .select(subject_id=pl.col("subject_id"), visit_id=pl.col("hadm_id"), start=_datetime("admittime"),
                      end=_datetime("dischtime"),
                      died=pl.col("hospital_expire_flag").cast(pl.Int64, strict=False))
              .collect())
    patients = _scan(_table(hosp, "patients"), ["subject_id"]).collect()  # PyHealth joins them (inner)
    visits = visits.filter(pl.col("subject_id").is_in(patients["subject_id"].implode()))
    parts = []
    for name, (domain, code, time) in MIMIC_TABLES.items():
        columns = ["subject_id", "hadm_id", code] + ([time] if time else [])
        parts.append(_scan(_table(hosp, name), columns)
                     .filter(pl.col("subject_id").is_not_null() & pl.col("hadm_id").is_not_null()
                             & pl.col(code).is_not_null())
                     .select(subject_id=pl.col("subject_id"), visit_id=pl.col("hadm_id"), domain=pl.lit(domain),
                             code=pl.col(code).str.strip_chars(),
                             time=_datetime(time) if time else pl.lit(None, dtype=_DT)))
    events = pl.concat(parts).collect()
    return _checked(visits, events, str(root))


def read_event_table(events_path: Path, visits_path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A generic (MEDS-style) event table - ``subject_id, visit_id, code`` with an optional ``domain`` (else
    the code's prefix before ``//``, as MEDS writes ``DIAGNOSIS//ICD10CM//I10``: DIAGNOSIS -> conditions,
    PROCEDURE -> procedures, DRUG/MEDICATION -> drugs) - and a visits table ``subject_id, visit_id, start, end``
    with an optional ``died``."""
    def scan(path: Path) -> pl.LazyFrame:
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"{path} not found")
        return pl.scan_parquet(path) if path.name.endswith(".parquet") else pl.scan_csv(path, infer_schema=False)

    events = scan(events_path)
    names = events.collect_schema().names()
    missing = [c for c in ("subject_id", "visit_id", "code") if c not in names]
    if missing:
        raise MedAIError(f"{events_path}: column(s) {', '.join(missing)} missing; an event table needs "
                         f"subject_id, visit_id, code (found {', '.join(names)})")
    if "domain" in names:
        domain = pl.col("domain").cast(pl.Utf8)
    else:
        prefix = pl.col("code").cast(pl.Utf8).str.split("//").list.first().str.to_uppercase()
        domain = (pl.when(prefix.is_in(["DIAGNOSIS", "CONDITION"])).then(pl.lit("conditions"))
                  .when(prefix == "PROCEDURE").then(pl.lit("procedures"))
                  .when(prefix.is_in(["DRUG", "MEDICATION", "PRESCRIPTION"])).then(pl.lit("drugs")))
    events = (events.filter(pl.col("visit_id").is_not_null() & pl.col("code").is_not_null())
              .select(subject_id=pl.col("subject_id").cast(pl.Utf8), visit_id=pl.col("visit_id").cast(pl.Utf8),
                      domain=domain, code=pl.col("code").cast(pl.Utf8),
                      time=_datetime("time") if "time" in names else pl.lit(None, dtype=_DT))
              .filter(pl.col("domain").is_in(DOMAINS)).collect())
    visits = scan(visits_path)
    names = visits.collect_schema().names()
    missing = [c for c in ("subject_id", "visit_id", "start", "end") if c not in names]
    if missing:
        raise MedAIError(f"{visits_path}: column(s) {', '.join(missing)} missing; a visits table needs "
                         f"subject_id, visit_id, start, end[, died] (found {', '.join(names)})")
    visits = visits.select(subject_id=pl.col("subject_id").cast(pl.Utf8), visit_id=pl.col("visit_id").cast(pl.Utf8),
                           start=_datetime("start"), end=_datetime("end"),
                           died=pl.col("died").cast(pl.Int64, strict=False) if "died" in names
                           else pl.lit(None, dtype=pl.Int64)).collect()
    return _checked(visits, events, str(events_path))


def _checked(visits: pl.DataFrame, events: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    if visits.is_empty():
        raise MedAIError(f"{source}: no visits (admissions) found")
    bad = visits.filter(pl.col("start").is_null())
    if len(bad):
        raise MedAIError(f"{source}: {len(bad)} visit(s) without a readable start time (expected "
                         f"YYYY-MM-DD HH:MM:SS), e.g. visit {bad['visit_id'][0]}")
    return visits, events
