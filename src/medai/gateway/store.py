"""The gateway's durable queue in the MedAI database (SQLite or PostgreSQL), the way service jobs are leased.

- ``gateway_instances``: one row per received SOP Instance UID (the primary key: a re-sent instance is
  recognised and not processed twice); its spool file, its status (``received`` -> ``done`` | ``failed`` |
  ``unfit``; ``rejected`` and ``ignored`` at receipt) and its result.
- ``gateway_batches``: the unit of work, the instances of one series that arrived together. A batch is ``open``
  while instances arrive, ``queued`` once the association that sent them is released (or nothing new came for
  ``settle_s``), then ``running`` under a lease a worker renews, and ``done``, ``unfit`` or ``failed``. A batch
  left ``running`` by a gateway that died is claimed again when its lease runs out, or at once by the same
  gateway when it restarts. Failures are retried with back-off up to ``max_attempts``.
- ``gateway_results``: every result object stored to the PACS, by its SOP Instance UID. Result UIDs are derived
  from the batch, so a batch re-run after a crash re-sends the same objects instead of new copies.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, func, or_, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from medai.db import Base, UTCDateTime, get_engine, session_factory

PENDING = ("received",)
FINAL_BATCH = ("done", "unfit", "failed")


class InstanceRow(Base):
    __tablename__ = "gateway_instances"

    sop_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), nullable=False)
    series_uid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    batch_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    spool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    calling_ae: Mapped[str | None] = mapped_column(String(16), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)


class BatchRow(Base):
    __tablename__ = "gateway_batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    study_uid: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    outputs: Mapped[Any] = mapped_column(JSON, nullable=True)


class ResultRow(Base):
    __tablename__ = "gateway_results"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    destination: Mapped[str | None] = mapped_column(String(300), nullable=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


_TABLES = [InstanceRow.__table__, BatchRow.__table__, ResultRow.__table__]


def _now() -> datetime:
    return datetime.now(UTC)


class GatewayStore:
    def __init__(self, url: str | None = None, lease_s: float = 60.0, max_attempts: int = 5) -> None:
        Base.metadata.create_all(get_engine(url), tables=_TABLES)  # the engine may predate these tables
        self._sessions = session_factory(url)
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts

    # -- receiving ---------------------------------------------------------------------------------------
    def known(self, sop_uid: str) -> bool:
        with self._sessions() as session:
            return session.get(InstanceRow, sop_uid) is not None

    def pending(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(InstanceRow)
                                      .where(InstanceRow.status.in_(PENDING))) or 0)

    def intake(self, sop_uid: str, study_uid: str, series_uid: str, spool: str, calling_ae: str | None) -> bool:
        """Queue a received instance in its series' open batch; False when the SOP Instance UID is known."""
        now = _now()
        try:
            with self._sessions.begin() as session:
                if session.get(InstanceRow, sop_uid) is not None:
                    return False
                batch_id = session.scalar(select(BatchRow.id).where(BatchRow.series_uid == series_uid,
                                                                    BatchRow.status == "open").limit(1))
                touched = 0
                if batch_id is not None:  # still open? (the update locks the row against a concurrent close)
                    touched = session.execute(update(BatchRow).where(BatchRow.id == batch_id, BatchRow.status == "open")
                                              .values(last_received_at=now)).rowcount
                if not touched:
                    batch_id = uuid.uuid4().hex
                    session.add(BatchRow(id=batch_id, series_uid=series_uid, study_uid=study_uid, status="open",
                                         created_at=now, last_received_at=now, attempts=0))
                session.add(InstanceRow(sop_uid=sop_uid, study_uid=study_uid, series_uid=series_uid,
                                        batch_id=batch_id, status="received", spool=spool, calling_ae=calling_ae,
                                        received_at=now))
        except SQLIntegrityError:
            return False  # the same instance arrived twice at once: the other one is queued
        return True

    def record_refused(self, sop_uid: str, study_uid: str, series_uid: str, calling_ae: str | None, status: str,
                       reason: str) -> None:
        """An instance not queued (``rejected``: malformed; ``ignored``: not an image), kept for the report."""
        try:
            with self._sessions.begin() as session:
                if session.get(InstanceRow, sop_uid) is None:
                    session.add(InstanceRow(sop_uid=sop_uid, study_uid=study_uid or "", series_uid=series_uid or "",
                                            status=status, calling_ae=calling_ae, received_at=_now(),
                                            finished_at=_now(), error=reason[:2000]))
        except SQLIntegrityError:
            pass

    def close(self, series_uids) -> int:
        """The association that sent these series ended: their open batches are complete."""
        series_uids = list(series_uids)
        if not series_uids:
            return 0
        with self._sessions.begin() as session:
            return session.execute(update(BatchRow).where(BatchRow.series_uid.in_(series_uids),
                                                          BatchRow.status == "open")
                                   .values(status="queued")).rowcount

    def settle(self, settle_s: float, receiving: set[str] | frozenset[str] = frozenset()) -> int:
        """Open batches that received nothing for ``settle_s`` are complete (their association was aborted),
        except those of series a live association is still sending (``receiving``)."""
        limit = _now() - timedelta(seconds=settle_s)
        query = update(BatchRow).where(BatchRow.status == "open", BatchRow.last_received_at < limit)
        if receiving:
            query = query.where(BatchRow.series_uid.not_in(list(receiving)))
        with self._sessions.begin() as session:
            return session.execute(query.values(status="queued")).rowcount

    def touch_open(self) -> int:
        """At start: open batches count as just received, so their senders have ``settle_s`` to resume."""
        with self._sessions.begin() as session:
            return session.execute(update(BatchRow).where(BatchRow.status == "open")
                                   .values(last_received_at=_now())).rowcount

    # -- working -----------------------------------------------------------------------------------------
    def requeue_own(self, worker: str) -> int:
        """At start: batches this gateway was running when it stopped go back to the queue."""
        with self._sessions.begin() as session:
            return session.execute(update(BatchRow).where(BatchRow.status == "running", BatchRow.worker == worker)
                                   .values(status="queued", lease_until=None)).rowcount

    def claim(self, worker: str) -> BatchRow | None:
        now = _now()
        ready = or_((BatchRow.status == "queued") & (or_(BatchRow.not_before.is_(None), BatchRow.not_before <= now)),
                    (BatchRow.status == "running") & (BatchRow.lease_until < now))
        with self._sessions() as session:
            candidates = session.scalars(select(BatchRow.id).where(ready).order_by(BatchRow.created_at)
                                         .limit(5)).all()
        for batch_id in candidates:
            with self._sessions.begin() as session:
                taken = session.execute(update(BatchRow).where(BatchRow.id == batch_id).where(ready).values(
                    status="running", started_at=now, lease_until=now + self.lease, worker=worker,
                    attempts=BatchRow.attempts + 1)).rowcount
                if taken == 1:
                    return session.get(BatchRow, batch_id)
        return None

    def renew(self, batch_id: str, worker: str) -> None:
        with self._sessions.begin() as session:
            session.execute(update(BatchRow).where(BatchRow.id == batch_id, BatchRow.worker == worker)
                            .values(lease_until=_now() + self.lease))

    def instances(self, batch_id: str) -> list[InstanceRow]:
        with self._sessions() as session:
            return list(session.scalars(select(InstanceRow).where(InstanceRow.batch_id == batch_id)
                                        .order_by(InstanceRow.received_at, InstanceRow.sop_uid)))

    def set_instance(self, sop_uid: str, status: str, result: Any = None, error: str | None = None) -> None:
        with self._sessions.begin() as session:
            session.execute(update(InstanceRow).where(InstanceRow.sop_uid == sop_uid).values(
                status=status, result=result, error=error[:2000] if error else None, finished_at=_now()))

    def set_results(self, results: list[tuple[str, Any]]) -> None:
        """Several instances ``done`` with their results, in one transaction."""
        now = _now()
        with self._sessions.begin() as session:
            for sop_uid, result in results:
                session.execute(update(InstanceRow).where(InstanceRow.sop_uid == sop_uid).values(
                    status="done", result=result, error=None, finished_at=now))

    def set_batch(self, batch_id: str, **values: Any) -> None:
        with self._sessions.begin() as session:
            session.execute(update(BatchRow).where(BatchRow.id == batch_id).values(**values))

    def finish(self, batch_id: str, status: str, error: str | None = None, outputs: Any = None) -> None:
        """The batch's final state and, for ``unfit``/``failed``, its waiting instances', in one transaction (a
        reader, or a restart, never sees a finished batch whose instances still wait)."""
        now = _now()
        with self._sessions.begin() as session:
            session.execute(update(BatchRow).where(BatchRow.id == batch_id).values(
                status=status, error=error, outputs=outputs, finished_at=now, lease_until=None))
            if status in ("unfit", "failed"):
                session.execute(update(InstanceRow).where(InstanceRow.batch_id == batch_id,
                                                          InstanceRow.status == "received")
                                .values(status=status, error=(error or "")[:2000], finished_at=now))

    def retry(self, batch: BatchRow, error: str, delay_s: float) -> str:
        """Back to the queue after ``delay_s * 2**(attempt-1)``, or ``failed`` once attempts are used up."""
        if batch.attempts >= self.max_attempts:
            self.finish(batch.id, "failed", f"gave up after {batch.attempts} attempts: {error}")
            return "failed"
        wait = timedelta(seconds=delay_s * 2 ** max(batch.attempts - 1, 0))
        self.set_batch(batch.id, status="queued", error=error[:2000], not_before=_now() + wait, lease_until=None)
        return "queued"

    def was_sent(self, uid: str) -> bool:
        return bool(self.sent_among([uid]))

    def sent_among(self, uids: list[str]) -> set[str]:
        """Which of these result UIDs were stored at the destination already."""
        if not uids:
            return set()
        with self._sessions() as session:
            return set(session.scalars(select(ResultRow.uid).where(ResultRow.uid.in_(uids))))

    def record_sent(self, uids: list[str], batch_id: str, kind: str, destination: str | None) -> None:
        """Result objects stored at the destination, in one transaction."""
        sent = self.sent_among(uids)
        with self._sessions.begin() as session:
            session.add_all([ResultRow(uid=uid, batch_id=batch_id, kind=kind, destination=destination,
                                       sent_at=_now()) for uid in dict.fromkeys(uids) if uid not in sent])

    def expired_spool(self, retention_hours: float) -> list[tuple[str, str]]:
        """(sop_uid, spool file) of finished instances past the retention; their spool is forgotten here."""
        limit = _now() - timedelta(hours=retention_hours)
        with self._sessions.begin() as session:
            rows = session.execute(select(InstanceRow.sop_uid, InstanceRow.spool).where(
                InstanceRow.spool.is_not(None), InstanceRow.status.not_in(PENDING),
                InstanceRow.finished_at <= limit)).all()
            if rows:
                session.execute(update(InstanceRow).where(InstanceRow.sop_uid.in_([r[0] for r in rows]))
                                .values(spool=None))
        return [(r[0], r[1]) for r in rows]

    # -- reporting ---------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        with self._sessions() as session:
            batches = dict(session.execute(select(BatchRow.status, func.count()).group_by(BatchRow.status)).all())
            instances = dict(session.execute(select(InstanceRow.status, func.count())
                                             .group_by(InstanceRow.status)).all())
            problems = session.execute(select(InstanceRow.sop_uid, InstanceRow.series_uid, InstanceRow.status,
                                              InstanceRow.error)
                                       .where(InstanceRow.status.in_(("failed", "rejected", "unfit", "ignored")))
                                       .order_by(InstanceRow.received_at.desc()).limit(50)).all()
            results = int(session.scalar(select(func.count()).select_from(ResultRow)) or 0)
        return {"batches": batches, "instances": instances, "results_sent": results,
                "problems": [{"sop_instance_uid": p[0], "series_instance_uid": p[1], "status": p[2],
                              "reason": p[3]} for p in problems]}

    def batch(self, batch_id: str) -> BatchRow | None:
        with self._sessions() as session:
            return session.get(BatchRow, batch_id)

    def batches(self) -> list[BatchRow]:
        with self._sessions() as session:
            return list(session.scalars(select(BatchRow).order_by(BatchRow.created_at)))

