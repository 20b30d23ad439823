"""MIMIC-IV (hosp + icu modules, CSV or gzip CSV as PhysioNet ships them) as stays: ICU stays with their laboratory
results from ``labevents`` (named by ``d_labitems``), hours since ICU admission, and the outcome from
``admissions`` (in-hospital death, with its time). Lazy polars scans: only the needed columns of ``labevents`` are
read, which keeps full MIMIC-IV (~120 M lab rows) within a workstation's memory.

The demo (100 patients, 140 ICU stays) has no ``chartevents`` (vital signs) in our copy: labs only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medai.errors import NotFoundError
from medai.modalities.longitudinal.reading import ReadStays, clean
from medai.modalities.longitudinal.stays import Stays

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _table(root: Path, name: str) -> Path:
    for suffix in (".csv.gz", ".csv"):
        path = root / f"{name}{suffix}"
        if path.is_file():
            return path
    raise NotFoundError(f"MIMIC-IV table {name}.csv(.gz) not found under {root}")


def icu_stays(root: Path, window_hours: float) -> tuple[ReadStays, pd.DataFrame]:
    """Stays of the first ``window_hours`` of every ICU stay, and a labels table indexed by ``stay_id``
    (``subject_id``, ``hospital_expire_flag``, ``event_hours``: death in hours since ICU admission)."""
    import polars as pl

    root = Path(root)
    dt = pl.Datetime("us")
    icu = pl.read_csv(_table(root, "icu/icustays"), columns=["subject_id", "hadm_id", "stay_id", "intime"]
                      ).with_columns(pl.col("intime").str.strptime(dt, TIME_FORMAT))
    admissions = pl.read_csv(_table(root, "hosp/admissions"),
                             columns=["hadm_id", "deathtime", "hospital_expire_flag"]).with_columns(
        pl.col("deathtime").str.strptime(dt, TIME_FORMAT, strict=False))
    items = pl.read_csv(_table(root, "hosp/d_labitems"), columns=["itemid", "label", "fluid"]).select(
        "itemid", label=pl.col("label") + " (" + pl.col("fluid") + ")")  # urine pH is not blood pH
    labs = (pl.scan_csv(_table(root, "hosp/labevents"), infer_schema_length=10000)
            .select("hadm_id", "itemid", "charttime", "valuenum")
            .filter(pl.col("valuenum").is_not_null() & pl.col("hadm_id").is_not_null())
            .join(icu.lazy().select("hadm_id", "stay_id", "intime"), on="hadm_id")
            .with_columns(pl.col("charttime").str.strptime(dt, TIME_FORMAT))
            .with_columns(hours=(pl.col("charttime") - pl.col("intime")).dt.total_seconds() / 3600.0)
            .filter((pl.col("hours") >= 0) & (pl.col("hours") <= window_hours))
            .join(items.lazy(), on="itemid", how="left")
            .with_columns(variable=pl.coalesce(pl.col("label"), pl.col("itemid").cast(pl.Utf8)))
            .collect())
    ids = icu["stay_id"].cast(pl.Utf8).to_numpy()
    stays = Stays.from_long(labs["stay_id"].cast(pl.Utf8).to_numpy(), labs["hours"].to_numpy(),
                            labs["variable"].to_numpy(), labs["valuenum"].to_numpy(), ids=ids,
                            horizon=window_hours)
    stays, notes = clean(stays)
    notes.insert(0, f"{len(ids)} ICU stays, {len(stays.time)} lab results of {len(stays.variables)} tests in the "
                    f"first {window_hours:g} h (MIMIC-IV labevents)")
    table = icu.join(admissions, on="hadm_id", how="left").with_columns(
        event_hours=(pl.col("deathtime") - pl.col("intime")).dt.total_seconds() / 3600.0)
    labels = table.select("stay_id", "subject_id", "hospital_expire_flag", "event_hours").to_pandas()
    labels["stay_id"] = labels["stay_id"].astype(str)
    labels["subject_id"] = labels["subject_id"].astype(str)
    labels["event_hours"] = labels["event_hours"].astype(float).where(labels["hospital_expire_flag"] == 1, np.nan)
    return ReadStays(stays, notes, id_column="stay_id", window_hours=window_hours), labels.set_index("stay_id")
