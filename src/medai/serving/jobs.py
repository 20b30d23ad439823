"""Batch prediction jobs whose state lives in the database, so they survive a server restart.

A job is a row of ``service_jobs`` plus a folder ``MEDAI_HOME/jobs/<id>/`` holding its input (a CSV for
tabular models; de-identified files for file-based models) and, when done, ``result.csv``.

States: ``queued`` -> ``running`` -> ``done`` | ``failed``. A worker claims a job with one conditional
``UPDATE`` (so two workers never run the same job) and holds a *lease* it renews while running; a job
left ``running`` by a server that crashed is claimed again once its lease has run out. On start, a
server also re-queues jobs it itself had claimed under the same worker id (none, normally).

Privacy (issue 9, finding 6): a job's input is deleted as soon as the job ends, done or failed; its result
is kept for ``retention_s`` (default 7 days) and then deleted by the worker; errors name rows and columns,
never cell values, and never a server path. Budget: each job runs under a :class:`medai.budget.Budget`
(a time limit, per-file pixel limits) and reads its input in chunks, so its memory does not grow with the
size of the input.
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

from medai import budget, config
from medai.db import Base, session_factory
from medai.errors import MedAIError, NotFoundError
from medai.fsutil import atomic_write_bytes
from medai.serving.redact import redact_paths

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


def job_json(row: JobRow, result_kept: bool = True) -> dict[str, Any]:
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
        "result_url": f"/v1/jobs/{row.id}/result" if row.status == "done" and result_kept else None,
    }


class JobStore:
    """Jobs in the MedAI database; files under ``root`` (default ``MEDAI_HOME/jobs``)."""

    def __init__(
        self,
        url: str | None = None,
        root: Path | None = None,
        lease_s: float = 60.0,
        max_attempts: int = 3,
        retention_s: float = 7 * 86400.0,
        budget_factory: Callable[[], budget.Budget] | None = None,
    ) -> None:
        self._sessions = session_factory(url)
        self.root = Path(root) if root else config.home() / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.retention = timedelta(seconds=retention_s)
        self.budget_factory = budget_factory
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
        row = self._row(job_id)
        return job_json(row, result_kept=row.status != "done" or (self.folder(job_id) / "result.csv").is_file())

    def list(self, key_id: str | None, limit: int = 100) -> list[dict[str, Any]]:  # noqa: A003
        """The newest jobs first: those of ``key_id``, or everyone's when it is None (admins)."""
        query = select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)
        if key_id is not None:
            query = query.where(JobRow.key_id == key_id)
        with self._sessions() as session:
            rows = session.scalars(query).all()
        return [job_json(r, result_kept=r.status != "done" or (self.folder(r.id) / "result.csv").is_file())
                for r in rows]

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
            raise NotFoundError(
                f"job {job_id}: its result is no longer kept (results are deleted "
                f"{self.retention.total_seconds() / 86400:g} days after a job ends)"
            )
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
            self.delete_inputs(row.id)
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
            with budget.use(self.budget_factory() if self.budget_factory else None):
                data = predict(row, folder)
            atomic_write_bytes(folder / "result.csv", data)
            n = max(data.count(b"\n") - 1, 0)
            self.finish(row.id, items=n)
        except MedAIError as exc:
            self.finish(row.id, error=public_error(exc))
        except Exception as exc:  # noqa: BLE001 - a job failure must not kill the worker
            log.error("job %s failed: %s", row.id, type(exc).__name__)  # no message: it may quote input values
            self.finish(row.id, error=f"internal error ({type(exc).__name__})")
        finally:
            stop.set()
            self.delete_inputs(row.id)
        return row.id

    def delete_inputs(self, job_id: str) -> None:
        """Remove a job's input (the uploaded CSV or files), keeping its result."""
        folder = self.folder(job_id)
        (folder / "input.csv").unlink(missing_ok=True)
        shutil.rmtree(folder / "input", ignore_errors=True)

    def purge(self, now: datetime | None = None) -> int:
        """Delete the files of jobs that ended more than ``retention`` ago, and of finished jobs' leftover
        inputs; the number of job folders removed. Job rows (no PHI) stay, so a job still reports its status."""
        cutoff = (now or _now()) - self.retention
        with self._sessions() as session:
            rows = session.execute(
                select(JobRow.id, JobRow.finished_at).where(JobRow.status.in_(("done", "failed")))
            ).all()
        removed = 0
        known = {job_id for job_id, _ in rows}
        with self._sessions() as session:
            known |= set(session.scalars(select(JobRow.id).where(JobRow.status.in_(("queued", "running")))))
        stale = (now or _now()).timestamp() - 3600  # a folder whose job row was never written (a crash)
        for entry in self.root.iterdir() if self.root.is_dir() else ():
            try:
                if entry.name not in known and entry.stat().st_mtime < stale:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
            except OSError:
                pass
        for job_id, finished in rows:
            folder = self.folder(job_id)
            if not folder.exists():
                continue
            if finished is not None and finished < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
            else:
                self.delete_inputs(job_id)  # a crash between the end of a job and this cleanup
        return removed

    def delete_files(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)


def public_error(exc: BaseException) -> str:
    """A job's error as stored and shown: one line, no server path, at most 2,000 characters."""
    return redact_paths(" ".join(str(exc).split()))[:2000]


class JobWorker:
    """A background thread that runs queued jobs one at a time, and deletes expired results now and then."""

    def __init__(
        self,
        store: JobStore,
        predict: Callable[[JobRow, Path], bytes],
        poll_s: float = 1.0,
        purge_every_s: float = 300.0,
    ) -> None:
        self.store = store
        self.predict = predict
        self.poll_s = poll_s
        self.purge_every_s = purge_every_s
        self._next_purge = 0.0
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
        import time

        while not self._stop.is_set():
            if time.monotonic() >= self._next_purge:
                self._next_purge = time.monotonic() + self.purge_every_s
                try:
                    self.store.purge()
                except Exception as exc:  # noqa: BLE001
                    log.warning("job worker: purge failed: %s", type(exc).__name__)
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


FILE_CHUNK = 64
"""Files of a job predicted together (each decoded one by one under the job's budget)."""
