"""Batch prediction jobs whose state lives in the database, so they survive a server restart.

A job is a row of ``service_jobs`` plus a folder ``MEDAI_HOME/jobs/<id>/`` holding its input (a CSV for
tabular models; de-identified files for file-based models) and, when done, ``result.csv``.

States: ``queued`` -> ``running`` -> ``done`` | ``failed``. A worker claims a job with one conditional
``UPDATE`` (so two workers never run the same job) and holds a *lease* it renews while running; a job
left ``running`` by a server that crashed is claimed again once its lease has run out. On start, a
server also re-queues jobs it itself had claimed under the same worker id (none, normally).
"""

from __future__ import annotations

import io
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, TypeDecorator, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from medai import config
from medai.db import Base, session_factory
from medai.errors import MedAIError, NotFoundError
from medai.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed")


class _UTC(TypeDecorator):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JobRow(Base):
    __tablename__ = "service_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # "csv" or "files"
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    input_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    items: Mapped[int | None] = mapped_column(Integer, nullable=True)
    explain: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(_UTC, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(_UTC, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(_UTC, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(_UTC, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


def _now() -> datetime:
    return datetime.now(UTC)


def job_json(row: JobRow) -> dict[str, Any]:
    iso = lambda v: v.isoformat() if v else None  # noqa: E731
    return {
        "id": row.id,
        "model": row.model,
        "version": row.version,
        "status": row.status,
        "kind": row.kind,
        "items": row.items,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "error": row.error,
        "result_url": f"/v1/jobs/{row.id}/result" if row.status == "done" else None,
    }


class JobStore:
    """Jobs in the MedAI database; files under ``root`` (default ``MEDAI_HOME/jobs``)."""

    def __init__(
        self, url: str | None = None, root: Path | None = None, lease_s: float = 60.0, max_attempts: int = 3
    ) -> None:
        self._sessions = session_factory(url)
        self.root = Path(root) if root else config.home() / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.worker_id = uuid.uuid4().hex

    def folder(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise NotFoundError(f"no job with id {job_id!r}")
        return self.root / job_id

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def create(
        self,
        job_id: str,
        model: str,
        version: int | None,
        kind: str,
        key_id: str | None,
        input_sha256: str | None,
        items: int | None,
        explain: bool = False,
    ) -> dict[str, Any]:
        """Record a job whose input is already in :meth:`folder` (so a queued job always has its input)."""
        with self._sessions.begin() as session:
            row = JobRow(
                id=job_id,
                model=model,
                version=version,
                kind=kind,
                status="queued",
                key_id=key_id,
                input_sha256=input_sha256,
                items=items,
                explain=int(explain),
                created_at=_now(),
                attempts=0,
            )
            session.add(row)
            session.flush()
            return job_json(row)

    def get(self, job_id: str) -> dict[str, Any]:
        return job_json(self._row(job_id))

    def owner(self, job_id: str) -> str | None:
        return self._row(job_id).key_id

    def _row(self, job_id: str) -> JobRow:
        with self._sessions() as session:
            row = session.get(JobRow, job_id)
            if row is None:
                raise NotFoundError(f"no job with id {job_id!r}")
            return row

    def result_path(self, job_id: str) -> Path:
        row = self._row(job_id)
        if row.status != "done":
            raise MedAIError(f"job {job_id} is {row.status}; its result is available once it is done")
        path = self.folder(job_id) / "result.csv"
        if not path.is_file():
            raise NotFoundError(f"job {job_id}: result file is missing")
        return path

    # ------------------------------------------------------------------------------------ working

    def claim(self) -> JobRow | None:
        """Take the oldest queued job, or a running one whose lease ran out (its server died)."""
        now = _now()
        with self._sessions() as session:
            candidates = session.scalars(
                select(JobRow.id)
                .where(or_(JobRow.status == "queued", (JobRow.status == "running") & (JobRow.lease_until < now)))
                .order_by(JobRow.created_at)
                .limit(5)
            ).all()
        for job_id in candidates:
            with self._sessions.begin() as session:
                result = session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id)
                    .where(
                        or_(
                            JobRow.status == "queued",
                            (JobRow.status == "running") & (JobRow.lease_until < now),
                        )
                    )
                    .values(
                        status="running",
                        started_at=now,
                        lease_until=now + self.lease,
                        worker=self.worker_id,
                        attempts=JobRow.attempts + 1,
                    )
                )
                if result.rowcount == 1:
                    return session.get(JobRow, job_id)
        return None

    def renew(self, job_id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.worker == self.worker_id)
                .values(lease_until=_now() + self.lease)
            )

    def finish(self, job_id: str, error: str | None = None, items: int | None = None) -> None:
        values: dict[str, Any] = {
            "status": "failed" if error else "done",
            "finished_at": _now(),
            "lease_until": None,
            "error": error,
        }
        if items is not None:
            values["items"] = items
        with self._sessions.begin() as session:
            session.execute(update(JobRow).where(JobRow.id == job_id).values(**values))

    def run_one(self, predict: Callable[[JobRow, Path], bytes]) -> str | None:
        """Claim and run one job; its id, or None when nothing was waiting."""
        row = self.claim()
        if row is None:
            return None
        folder = self.folder(row.id)
        if row.attempts > self.max_attempts:
            self.finish(
                row.id,
                error=f"gave up after {row.attempts - 1} attempts (the server stopped while running it)",
            )
            return row.id
        stop = threading.Event()

        def keep_lease() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                try:
                    self.renew(row.id)
                except Exception:  # noqa: BLE001
                    log.warning("job %s: lease renewal failed", row.id)

        renewer = threading.Thread(target=keep_lease, daemon=True, name=f"medai-job-lease-{row.id[:8]}")
        renewer.start()
        try:
            data = predict(row, folder)
            atomic_write_bytes(folder / "result.csv", data)
            n = max(data.count(b"\n") - 1, 0)
            self.finish(row.id, items=n)
        except MedAIError as exc:
            self.finish(row.id, error=str(exc)[:2000])
        except Exception as exc:  # noqa: BLE001 - a job failure must not kill the worker
            log.exception("job %s failed", row.id)
            self.finish(row.id, error=f"internal error ({type(exc).__name__})")
        finally:
            stop.set()
        return row.id

    def delete_files(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)


class JobWorker:
    """A background thread that runs queued jobs one at a time."""

    def __init__(self, store: JobStore, predict: Callable[[JobRow, Path], bytes], poll_s: float = 1.0) -> None:
        self.store = store
        self.predict = predict
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="medai-job-worker")

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.store.run_one(self.predict)
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                log.exception("job worker: could not claim a job")
                ran = None
            if ran is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()


def frame_to_csv(frame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")
