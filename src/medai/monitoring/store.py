"""The monitoring store: tables in the service's own database (SQLite or PostgreSQL), holding no PHI.

- ``monitor_batches``: per served batch (the recorder merges the requests of about a second), the number of
  records and their counts in the reference's bins, per feature and per prediction summary - never a value.
- ``monitor_predictions``: per served record, the model's scores, its conformal set or interval, a reduced
  representation (16 numbers, for embedding drift) and, when the client named the record, a keyed hash of that
  name (HMAC-SHA256 with the installation's monitoring secret): outcomes that arrive later are joined to it by
  the same hash, so no identifier is stored in clear. The outcome itself is kept beside the scores.
- ``monitor_alerts``: every alert raised (drift or performance), with the window it was raised on.
- ``monitor_settings``: per model thresholds and window sizes (:class:`MonitorSettings`).

Rows older than the retention (``MEDAI_MONITOR_RETENTION_DAYS``, default 90) are deleted by :meth:`purge`
(the service calls it at start and hourly); alerts are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from medai import config
from medai.db import Base, UTCDateTime, session_factory, sqlite_writer
from medai.errors import MedAIError

_ID = BigInteger().with_variant(Integer, "sqlite")


def now() -> datetime:
    return datetime.now(UTC)


class MonitorBatch(Base):
    __tablename__ = "monitor_batches"
    __table_args__ = (Index("ix_monitor_batches_model", "model", "version", "id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    summary: Mapped[dict] = mapped_column(JSON, nullable=False)


class MonitorPrediction(Base):
    __tablename__ = "monitor_predictions"
    __table_args__ = (Index("ix_monitor_predictions_model", "model", "version", "id"),
                      Index("ix_monitor_predictions_key", "model", "record_key"))

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    record_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    score: Mapped[Any] = mapped_column(JSON, nullable=False)
    answer: Mapped[Any] = mapped_column(JSON, nullable=True)  # conformal set (classes) or [low, high]
    embedding: Mapped[Any] = mapped_column(JSON, nullable=True)
    outcome: Mapped[Any] = mapped_column(JSON, nullable=True)
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MonitorAlert(Base):
    __tablename__ = "monitor_alerts"
    __table_args__ = (UniqueConstraint("model", "version", "category", "subject", "window_end",
                                       name="uq_monitor_alert"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    category: Mapped[str] = mapped_column(String(32), nullable=False)  # drift | performance
    subject: Mapped[str] = mapped_column(String(300), nullable=False)  # feature, summary or metric
    window_end: Mapped[int] = mapped_column(BigInteger, nullable=False)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    detail: Mapped[Any] = mapped_column(JSON, nullable=True)


class MonitorSetting(Base):
    __tablename__ = "monitor_settings"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    settings: Mapped[dict] = mapped_column(JSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


# ------------------------------------------------------------------------------------------ settings


@dataclass
class MonitorSettings:
    """A model's monitoring thresholds (``medai monitor settings``, ``PUT /v1/admin/models/{name}/monitoring``)."""

    window: int = 500  # served records per drift window
    step: int | None = None  # records between consecutive windows (default: half a window: sliding windows)
    min_window: int = 50  # a window with fewer records is not tested
    fdr: float = 0.05  # Benjamini-Hochberg level over all the tests of one window
    psi_min: float = 0.1  # a column also needs this PSI to be called drifted (effect size, not only p-value)
    outcome_window: int = 200  # records with outcomes per performance window
    min_outcomes: int = 50
    floors: dict[str, float] = field(default_factory=dict)  # metric -> an absolute minimum (e.g. auroc: 0.75)
    webhook: str | None = None  # POSTed each new alert (JSON); default MEDAI_MONITOR_WEBHOOK
    history: int = 40  # windows shown in the report

    def __post_init__(self) -> None:
        for name in ("window", "min_window", "outcome_window", "min_outcomes", "history"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1_000_000:
                raise MedAIError(f"monitoring setting {name!r}: expected a whole number from 1 to 1000000, got "
                                 f"{value!r}")
        if self.step is not None and (not isinstance(self.step, int) or not 1 <= self.step <= 1_000_000):
            raise MedAIError(f"monitoring setting 'step': expected a whole number from 1 to 1000000, got {self.step!r}")
        if not 0 < float(self.fdr) < 1:
            raise MedAIError(f"monitoring setting 'fdr': expected a level between 0 and 1, got {self.fdr!r}")
        if not 0 <= float(self.psi_min) <= 100:
            raise MedAIError(f"monitoring setting 'psi_min': expected 0 to 100, got {self.psi_min!r}")
        for name, value in self.floors.items():
            if not isinstance(value, int | float) or value != value:
                raise MedAIError(f"monitoring floor {name!r}: expected a number, got {value!r}")
        if self.webhook is not None and not str(self.webhook).startswith(("http://", "https://")):
            raise MedAIError("monitoring setting 'webhook': expected an http(s) URL")

    @property
    def stride(self) -> int:
        return self.step or max(1, self.window // 2)

    @property
    def outcome_stride(self) -> int:
        return max(1, self.outcome_window // 2)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> MonitorSettings:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MedAIError(f"unknown monitoring setting {unknown[0]!r}; settings are: {', '.join(sorted(known))}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def retention_days() -> float:
    value = os.environ.get("MEDAI_MONITOR_RETENTION_DAYS")
    days = float(value) if value else 90.0
    if not days > 0:
        raise MedAIError(f"MEDAI_MONITOR_RETENTION_DAYS: expected a positive number of days, got {value!r}")
    return days


# ------------------------------------------------------------------------------------------- secret


def monitoring_secret() -> bytes:
    """The key of the record-id hashes: ``MEDAI_MONITOR_SECRET`` (share it between hosts that share a database),
    else ``MEDAI_HOME/monitor.key``, made once and readable by its owner only."""
    value = os.environ.get("MEDAI_MONITOR_SECRET")
    if value:
        if len(value) < 16:
            raise MedAIError("MEDAI_MONITOR_SECRET is too short: expected at least 16 characters")
        return value.encode()
    return config.secret_file("monitor.key")


def record_key(secret: bytes, model: str, record_id: Any) -> str:
    """The stored form of a client's record id: HMAC-SHA256 over the model name and the id."""
    text = str(record_id).strip()
    return hmac.new(secret, f"{model}\x00{text}".encode(), hashlib.sha256).hexdigest()


def check_record_ids(record_ids: list[Any] | None, n: int, where: str = "record_ids") -> None:
    if record_ids is None:
        return
    if len(record_ids) != n:
        raise MedAIError(f"{where}: expected one id per record ({n}), got {len(record_ids)}")
    for i, rid in enumerate(record_ids):
        if rid is None or not str(rid).strip() or len(str(rid)) > 200:
            raise MedAIError(f"{where}[{i}]: expected a non-empty id of at most 200 characters")


# -------------------------------------------------------------------------------------------- store


class MonitorStore:
    """Reads and writes the monitoring tables (see the module docs)."""

    def __init__(self, url: str | None = None, secret: bytes | None = None) -> None:
        self._sessions = session_factory(url)
        self._secret = secret

    @contextmanager
    def _writing(self):
        """A session in one transaction that writes, taken in the database's write turn (see
        :func:`medai.db.sqlite_writer`): the audit appenders of every server process share that turn, so neither
        sleeps in SQLite's busy handler while the other commits."""
        with sqlite_writer(self._sessions.kw["bind"]), self._sessions.begin() as session:
            yield session

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = monitoring_secret()
        return self._secret

    def key(self, model: str, record_id: Any) -> str:
        return record_key(self.secret, model, record_id)

    # -- writing -----------------------------------------------------------------------------------------
    def add_batch(self, model: str, version: int, n: int, summary: dict, rows: list[dict[str, Any]],
                  ts: datetime | None = None) -> int:
        """One batch summary and its per-record rows (``record_key``, ``score``, ``answer``, ``embedding``)."""
        ts = ts or now()
        with self._writing() as session:
            batch = MonitorBatch(model=model, version=int(version), ts=ts, n=int(n), summary=summary)
            session.add(batch)
            session.flush()
            if rows:
                session.execute(MonitorPrediction.__table__.insert(),
                                [{"model": model, "version": int(version), "ts": ts, **row} for row in rows])
            return int(batch.id)

    def add_outcomes(self, model: str, outcomes: list[tuple[Any, Any]]) -> dict[str, int]:
        """Join ``(record_id, outcome)`` pairs to the latest prediction of ``model`` for each id (an outcome sent
        again replaces the earlier one). Returns how many matched a prediction."""
        keyed: dict[str, Any] = {}
        for record_id, outcome in outcomes:
            keyed[self.key(model, record_id)] = outcome
        matched = 0
        stamp = now()
        with self._writing() as session:
            keys = list(keyed)
            latest: dict[str, int] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = session.execute(
                    select(MonitorPrediction.id, MonitorPrediction.record_key)
                    .where(MonitorPrediction.model == model, MonitorPrediction.record_key.in_(chunk))
                ).all()
                for row_id, key in rows:
                    if row_id > latest.get(key, -1):
                        latest[key] = row_id
            for key, row_id in latest.items():
                session.execute(update(MonitorPrediction).where(MonitorPrediction.id == row_id)
                                .values(outcome=keyed[key], outcome_at=stamp))
                matched += 1
        return {"received": len(outcomes), "distinct": len(keyed), "matched": matched,
                "unmatched": len(keyed) - matched}

    def add_alerts(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store alerts not stored before (same model, version, category, subject and window); returns the new."""
        fresh = []
        for alert in alerts:
            try:
                with self._writing() as session:
                    session.add(MonitorAlert(ts=now(), **{k: alert[k] for k in (
                        "model", "version", "category", "subject", "window_end", "value", "message", "detail")}))
                fresh.append(alert)
            except SQLIntegrityError:
                continue
        return fresh

    def put_settings(self, model: str, settings: MonitorSettings) -> None:
        with self._writing() as session:
            row = session.get(MonitorSetting, model)
            if row is None:
                session.add(MonitorSetting(model=model, settings=settings.to_json(), updated_at=now()))
            else:
                row.settings, row.updated_at = settings.to_json(), now()

    def purge(self, days: float | None = None) -> dict[str, int]:
        """Delete batch and prediction rows older than the retention."""
        cutoff = now() - timedelta(days=retention_days() if days is None else days)
        with self._writing() as session:
            batches = session.execute(delete(MonitorBatch).where(MonitorBatch.ts < cutoff)).rowcount
            predictions = session.execute(delete(MonitorPrediction).where(MonitorPrediction.ts < cutoff)).rowcount
        return {"batches": int(batches or 0), "predictions": int(predictions or 0)}

    # -- reading -----------------------------------------------------------------------------------------
    def settings(self, model: str) -> MonitorSettings:
        with self._sessions() as session:
            row = session.get(MonitorSetting, model)
            return MonitorSettings.from_json(row.settings if row else None)

    def batches(self, model: str, version: int, limit: int = 100_000) -> list[MonitorBatch]:
        with self._sessions() as session:
            rows = session.execute(select(MonitorBatch).where(MonitorBatch.model == model,
                                                              MonitorBatch.version == int(version))
                                   .order_by(MonitorBatch.id.desc()).limit(limit)).scalars().all()
        return list(reversed(rows))

    def predictions(self, model: str, version: int, *, labelled: bool = False, embedded: bool = False,
                    limit: int = 100_000) -> list[MonitorPrediction]:
        query = select(MonitorPrediction).where(MonitorPrediction.model == model,
                                                MonitorPrediction.version == int(version))
        if labelled:
            query = query.where(MonitorPrediction.outcome_at.is_not(None))
        if embedded:
            query = query.where(MonitorPrediction.embedding.is_not(None))
        with self._sessions() as session:
            rows = session.execute(query.order_by(MonitorPrediction.id.desc()).limit(limit)).scalars().all()
        return list(reversed(rows))

    def alerts(self, model: str, version: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        query = select(MonitorAlert).where(MonitorAlert.model == model)
        if version is not None:
            query = query.where(MonitorAlert.version == int(version))
        with self._sessions() as session:
            rows = session.execute(query.order_by(MonitorAlert.id.desc()).limit(limit)).scalars().all()
        return [{"id": r.id, "ts": r.ts.isoformat(), "model": r.model, "version": r.version, "category": r.category,
                 "subject": r.subject, "window_end": r.window_end, "value": r.value, "message": r.message,
                 "detail": r.detail} for r in rows]

    def counts(self, model: str, version: int) -> dict[str, int]:
        from sqlalchemy import func

        with self._sessions() as session:
            served = session.execute(select(func.coalesce(func.sum(MonitorBatch.n), 0)).where(
                MonitorBatch.model == model, MonitorBatch.version == int(version))).scalar_one()
            labelled = session.execute(select(func.count()).select_from(MonitorPrediction).where(
                MonitorPrediction.model == model, MonitorPrediction.version == int(version),
                MonitorPrediction.outcome_at.is_not(None))).scalar_one()
        return {"served": int(served), "with_outcome": int(labelled)}


def dumps_settings(settings: MonitorSettings) -> str:
    return json.dumps(settings.to_json(), sort_keys=True)
