"""Visit-history tasks, declared as data: which visits are index visits, which of their code domains must be
present, and the label - PyHealth 1.1.3's MIMIC-IV task definitions, built with polars.

- ``mortality``: every visit that has a next one; label = the next visit's in-hospital death (``died``; 0
  when unknown) - ``mortality_prediction_mimic4_fn``.
- ``readmission``: every visit that has a next one; label = the next admission starts fewer than
  ``window_days`` whole days after this one started - ``readmission_prediction_mimic4_fn`` (it measures
  admission to admission, in whole days).
- ``los``: every visit; label = its length of stay in whole days, in PyHealth's 10 classes (0: < 1 day, 1-7:
  that many days, 8: 8-14 days, 9: > 14 days) - ``length_of_stay_prediction_mimic4_fn``.
- ``next-diagnoses``: see :data:`NEXT_DIAGNOSES` below.

Every index visit needs at least one condition, procedure and drug code (PyHealth's exclusion). ``order`` says
what "next" means: ``"pyhealth"`` orders each patient's visits by visit id (as text), which is what PyHealth 1.1.3
does (``MIMIC4Dataset.parse_basic_info`` adds visits in ``groupby("hadm_id")`` order, and MIMIC-IV's ``hadm_id`` is
not chronological), so its "next admission" is often an earlier one and its readmission gaps can be negative
(counted as readmissions); ``"time"`` orders them by start time - the clinically meaningful definition. Either
way a sample carries the codes of its patient's visits that started no later than the index visit, in time
order, the index visit last (never a later visit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medai.errors import MedAIError
from medai.modalities.longitudinal.histories import DOMAINS, VisitHistories

if TYPE_CHECKING:  # polars is imported where it is used: `medai` starts without the ehr extra
    import polars as pl

LABELS = ("mortality", "readmission", "los", "next-diagnoses")


@dataclass(frozen=True)
class VisitTask:
    label: str
    index_visits: str = "with-next"  # "with-next": every visit but each patient's last; "all": every visit
    required: tuple[str, ...] = DOMAINS  # domains an index visit must have codes in
    window_days: int = 15  # readmission only
    next_required: tuple[str, ...] = ()  # domains the next visit must have codes in (next-diagnoses)
    order: str = "pyhealth"  # "pyhealth": visits by visit id, as PyHealth 1.1.3; "time": by start time

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise MedAIError(f"unknown visit label {self.label!r}; choose one of {', '.join(LABELS)}")
        if self.index_visits not in ("with-next", "all"):
            raise MedAIError(f"index_visits must be 'with-next' or 'all', not {self.index_visits!r}")
        if self.order not in ("pyhealth", "time"):
            raise MedAIError(f"order must be 'pyhealth' or 'time', not {self.order!r}")
        unknown = [d for d in (*self.required, *self.next_required) if d not in DOMAINS]
        if unknown:
            raise MedAIError(f"unknown code domain(s) {unknown}; choose from {', '.join(DOMAINS)}")


def los_class(days: pl.Expr) -> pl.Expr:
    """PyHealth's ``categorize_los``: < 1 -> 0, 1-7 -> days, 8-14 -> 8, > 14 -> 9."""
    import polars as pl

    return (pl.when(days < 1).then(0).when(days <= 7).then(days).when(days <= 14).then(8).otherwise(9)
            .cast(pl.Int64))


def _codes(events: pl.DataFrame) -> pl.DataFrame:
    """One row per visit: a sorted list of distinct codes per domain (empty lists where none)."""
    import polars as pl

    wide = (events.group_by("visit_id", "domain").agg(pl.col("code").unique().sort())
            .pivot(on="domain", index="visit_id", values="code"))
    for domain in DOMAINS:
        if domain not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.List(pl.Utf8)).alias(domain))
    return wide.select("visit_id", *DOMAINS)


def build_samples(visits: pl.DataFrame, events: pl.DataFrame, task: VisitTask) -> tuple[pl.DataFrame, VisitHistories]:
    """``(samples, histories)``: one row per sample (``subject_id``, ``visit_id``, ``label``; ``label`` a list
    of codes for next-diagnoses) and the visit histories aligned with it."""
    import polars as pl

    codes = _codes(events)
    v = (visits.join(codes, on="visit_id", how="left")
         .with_columns([pl.col(d).fill_null(pl.lit([], dtype=pl.List(pl.Utf8))) for d in DOMAINS])
         .sort(*(("subject_id", "visit_id") if task.order == "pyhealth" else ("subject_id", "start", "visit_id")))
         .with_columns(position=pl.int_range(pl.len()).over("subject_id"),
                       n_visits=pl.len().over("subject_id"))
         .with_columns(next_start=pl.col("start").shift(-1).over("subject_id"),
                       next_died=pl.col("died").shift(-1).over("subject_id"),
                       next_conditions=pl.col("conditions").shift(-1).over("subject_id")))
    keep = pl.lit(True)
    if task.index_visits == "with-next":
        keep = pl.col("position") < pl.col("n_visits") - 1
    for domain in task.required:
        keep = keep & (pl.col(domain).list.len() > 0)
    if task.next_required:
        keep = keep & (pl.col("position") < pl.col("n_visits") - 1)
        for domain in task.next_required:
            keep = keep & (pl.col(f"next_{domain}").list.len() > 0)
    v = v.with_columns(index=keep)
    if task.label == "mortality":
        label = pl.when(pl.col("next_died").is_in([0, 1])).then(pl.col("next_died")).otherwise(0).cast(pl.Int64)
    elif task.label == "readmission":
        label = ((pl.col("next_start") - pl.col("start")).dt.total_days() < task.window_days).cast(pl.Int64)
    elif task.label == "los":
        label = los_class(_whole_days(pl.col("end") - pl.col("start")))
    else:
        label = pl.col("next_conditions")
    v = v.with_columns(label=label)
    samples = v.filter(pl.col("index")).select("subject_id", "visit_id", "label")
    return samples, _histories(v, samples)


def _whole_days(duration: pl.Expr) -> pl.Expr:
    """Python's ``timedelta.days``: whole days, rounded down (also for negative durations)."""
    import polars as pl

    return (duration.dt.total_microseconds() // 86_400_000_000).cast(pl.Int64)


def _histories(v: pl.DataFrame, samples: pl.DataFrame) -> VisitHistories:
    """Each sample's visits that started no later than its index visit (time order, the index visit last)."""
    rows = v.sort("subject_id", "start", "visit_id").select("subject_id", "visit_id", *DOMAINS).to_dict(
        as_series=False)
    timeline: dict[object, list[dict[str, list[str]]]] = {}
    where: dict[object, tuple[object, int]] = {}
    for i, (subject, visit) in enumerate(zip(rows["subject_id"], rows["visit_id"], strict=True)):
        visits = timeline.setdefault(subject, [])
        visits.append({d: list(rows[d][i]) for d in DOMAINS})
        where[visit] = (subject, len(visits))
    ids = samples["visit_id"].to_list()
    histories = [timeline[where[i][0]][: where[i][1]] for i in ids]
    return VisitHistories(np.array([str(i) for i in ids], dtype=object),
                          np.array([str(s) for s in samples["subject_id"].to_list()], dtype=object), histories)
