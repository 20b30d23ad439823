"""A tamper-evident audit trail: one hash-chained row per request the service answers.

Every row of ``audit_log`` carries ``hash = sha256(canonical JSON of its fields, including seq and
prev_hash)`` (see :func:`row_hash`); ``prev_hash`` is the previous row's ``hash``, and the first row
chains to :data:`GENESIS_HASH`. ``seq`` is assigned by :meth:`AuditLog.record` as 1, 2, 3, ... with
no gaps. A one-row table ``audit_chain_head`` holds the last ``seq`` and ``hash``.

:meth:`AuditLog.verify` therefore detects

- an edited row (its stored hash no longer matches its fields),
- a deleted row in the middle (a gap in ``seq``; a re-numbered chain breaks ``prev_hash``),
- deleted rows at the end (the log stops before the seq/hash recorded in the chain head),
- a row inserted outside :meth:`record` (hash or ``prev_hash`` mismatch, or a row past the head).

Someone who can rewrite the database can rewrite the whole chain and the head together; to catch
that, publish :meth:`AuditLog.head` somewhere else now and then (an anchor) and check it later.

Concurrency: appends serialize on the chain head — ``SELECT ... FOR UPDATE`` of the head row on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite — so several server workers (threads or processes) never
fork the chain; the unique ``seq`` primary key is a second guard.

Cost: one transaction per :meth:`record` (lock head, insert, update head, commit), i.e. about
0.1-0.2 ms of CPU plus one durable commit (an fsync): 0.7 ms to 4 ms per call on the development VM
(SQLite WAL ``synchronous=FULL`` and local PostgreSQL ``synchronous_commit=on`` alike; the VM's
fsync alone takes 0.5-4 ms depending on load). Where that is too slow for the request path, use
:class:`BackgroundAuditWriter`: ``submit()`` costs a few microseconds and rows are written in
batches (about 0.05-0.15 ms per row); ``submit(wait=True)`` is a group commit that still waits for
durability but lets concurrent requests share one fsync. :meth:`record_many` writes a list of rows
in one transaction. Nothing is dropped silently; only rows queued with ``wait=False`` when the
whole process dies hard are lost (see :class:`BackgroundAuditWriter`).

Never put request bodies or PHI into an audit row: ``input_sha256`` identifies the input, ``detail``
is for small non-identifying facts (sizes, durations, error classes) and is capped at 4 KiB: a larger
detail is truncated (cut values keep their length and sha256), never refused, so no row is lost to it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Engine,
    Integer,
    String,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from medai.db import Base, UTCDateTime, get_engine, sqlite_writer
from medai.errors import MedAIError

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditHead",
    "AuditLog",
    "BackgroundAuditWriter",
    "VerifyResult",
    "input_sha256",
    "row_hash",
    "safe_detail",
]

log = logging.getLogger(__name__)

GENESIS_HASH = hashlib.sha256(b"medai-audit-genesis-v1").hexdigest()
MAX_DETAIL_BYTES = 4096
_HEAD_ID = 1
_PAGE = 1000

# Field name -> maximum length (strings are cut to this before hashing, so the stored row and the
# hashed row are the same on every back-end).
_STR_FIELDS: dict[str, int] = {
    "key_id": 32,
    "role": 16,
    "action": 64,
    "route": 512,
    "method": 10,
    "model": 200,
    "model_version": 64,
    "input_sha256": 64,
    "outcome": 32,
    "client": 200,
}
HASHED_FIELDS: tuple[str, ...] = (
    "seq",
    "ts",
    "key_id",
    "role",
    "action",
    "route",
    "method",
    "model",
    "model_version",
    "input_sha256",
    "outcome",
    "status_code",
    "client",
    "detail",
    "prev_hash",
)
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


# -------------------------------------------------------------------------------------------- tables


_SeqType = BigInteger().with_variant(Integer, "sqlite")


class AuditEntry(Base):
    """One audited request. See the module docstring for how ``hash`` is computed."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(_SeqType, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    route: Mapped[str | None] = mapped_column(String(512), nullable=True)
    method: Mapped[str | None] = mapped_column(String(10), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    input_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    client: Mapped[str | None] = mapped_column(String(200), nullable=True)
    detail: Mapped[Any] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)


class AuditChainHead(Base):
    """The single row (id 1) holding the last ``seq`` and ``hash`` of the chain; appends lock it."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(_SeqType, nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


_log_t = AuditEntry.__table__
_head_t = AuditChainHead.__table__


# ------------------------------------------------------------------------------------------- hashing


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts_text(value: datetime) -> str:
    return _as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(fields: Mapping[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(row: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a row's :data:`HASHED_FIELDS` (``ts`` as ISO-8601 UTC).

    Works on stored rows and on :meth:`AuditLog.export` dicts alike, so an exported JSON-lines file can
    be checked without the database.
    """
    fields = {name: row.get(name) for name in HASHED_FIELDS}
    ts = fields["ts"]
    if isinstance(ts, datetime):
        fields["ts"] = _ts_text(ts)
    elif isinstance(ts, str):
        fields["ts"] = _ts_text(datetime.fromisoformat(ts.replace("Z", "+00:00")))
    return hashlib.sha256(_canonical(fields).encode("utf-8")).hexdigest()


def input_sha256(data: bytes | str) -> str:
    """The ``input_sha256`` of a request body (UTF-8 for text)."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _clean(name: str, value: Any) -> str | None:
    if value is None:
        return None
    cleaned = str(value).replace("\x00", "\ufffd")
    return cleaned[: _STR_FIELDS[name]]


def _encode(detail: Any) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _digest_note(encoded: str) -> dict[str, Any]:
    data = encoded.encode("utf-8")
    return {"truncated": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _shorten(value: Any, limit: int) -> Any:
    """A value whose JSON is at most about ``limit`` bytes: long strings are cut (their length and sha256
    kept), large containers are replaced by a note with their size and sha256."""
    if isinstance(value, str):
        if len(value.encode("utf-8")) <= limit:
            return value
        return {"cut": value[: limit // 4], **_digest_note(json.dumps(value, ensure_ascii=False))}
    encoded = _encode(value)
    return value if len(encoded.encode("utf-8")) <= limit else _digest_note(encoded)


def _clean_detail(detail: Any) -> Any:
    """``detail`` as the database will return it; a detail over :data:`MAX_DETAIL_BYTES` is truncated (long
    values are cut down to a prefix, their size and sha256, with ``"truncated": true``), never refused, so a
    long path parameter can never cost a request its audit row."""
    if detail is None:
        return None
    try:
        encoded = _encode(detail)
    except (TypeError, ValueError) as exc:
        raise MedAIError(
            f"audit detail: expected JSON-serialisable data without NaN/Infinity ({exc})"
        ) from None
    if len(encoded.encode("utf-8")) > MAX_DETAIL_BYTES:
        detail = json.loads(encoded)
        if isinstance(detail, dict) and len(detail) <= 16:
            detail = {str(k): _shorten(v, 256) for k, v in detail.items()}
            detail["truncated"] = True
            encoded = _encode(detail)
        if len(encoded.encode("utf-8")) > MAX_DETAIL_BYTES:
            detail = _digest_note(encoded)
            encoded = _encode(detail)
    return json.loads(encoded)  # what comes back from the database: string keys, plain lists


def safe_detail(detail: Any) -> Any:
    """``detail`` made JSON-safe for the service's own rows: values that are not JSON (objects, NaN) become
    their type name, so building a row can never fail on them (the size is handled by :func:`_clean_detail`)."""
    if detail is None:
        return None

    def fix(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): fix(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [fix(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        return type(value).__name__

    return fix(detail)


# --------------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`AuditLog.verify`. ``first_bad_seq`` names the first row found wrong (or
    missing); ``checked`` counts rows whose hash was checked."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class AuditHead:
    """The chain head: the last ``seq`` and its ``hash`` (``seq`` 0 and :data:`GENESIS_HASH` when empty)."""

    seq: int
    hash: str


# -------------------------------------------------------------------------------------------- log


class AuditLog:
    """The audit trail in the MedAI database (``url``: any SQLAlchemy URL; default the configured one).

    Thread- and process-safe for writers; share one instance per process.
    """

    def __init__(self, url: str | None = None) -> None:
        self._engine: Engine = get_engine(url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._head_ready = False

    # ------------------------------------------------------------------------------------- writing

    def record(
        self,
        action: str,
        *,
        key_id: str | None = None,
        role: str | None = None,
        route: str | None = None,
        method: str | None = None,
        model: str | None = None,
        model_version: str | None = None,
        input_sha256: str | None = None,
        outcome: str = "ok",
        status_code: int | None = None,
        client: str | None = None,
        detail: Mapping[str, Any] | list | None = None,
    ) -> int:
        """Append one row; returns its ``seq``. ``outcome`` is e.g. ``ok``, ``denied``, ``error:500``."""
        return self.record_many(
            [
                dict(
                    action=action,
                    key_id=key_id,
                    role=role,
                    route=route,
                    method=method,
                    model=model,
                    model_version=model_version,
                    input_sha256=input_sha256,
                    outcome=outcome,
                    status_code=status_code,
                    client=client,
                    detail=detail,
                )
            ]
        )[0]

    def record_many(self, events: Iterable[Mapping[str, Any]]) -> list[int]:
        """Append several rows (keyword dicts as for :meth:`record`) in one transaction; their seqs."""
        return self._append([self._prepare(event) for event in events])

    def _append(self, prepared: list[dict[str, Any]]) -> list[int]:
        """Chain and insert rows already checked by :meth:`_prepare`, in one transaction."""
        if not prepared:
            return []
        self._ensure_head()
        with sqlite_writer(self._engine), self._engine.connect() as conn:
            try:
                head_seq, head_hash = self._lock_head(conn)
                rows = []
                now = datetime.now(UTC)
                for fields in prepared:
                    head_seq += 1
                    row = dict(fields, seq=head_seq, ts=now, prev_hash=head_hash)
                    row["hash"] = head_hash = row_hash(row)
                    rows.append(row)
                conn.execute(insert(_log_t), rows)
                conn.execute(
                    update(_head_t).where(_head_t.c.id == _HEAD_ID).values(seq=head_seq, hash=head_hash)
                )
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return [row["seq"] for row in rows]

    def _prepare(self, event: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(event) - set(_STR_FIELDS) - {"status_code", "detail"}
        if unknown:
            raise MedAIError(f"audit record: unknown field(s) {', '.join(sorted(unknown))}")
        action = event.get("action")
        if not isinstance(action, str) or not action:
            raise MedAIError("audit record: action: expected a non-empty string")
        outcome = event.get("outcome") or "ok"
        if not isinstance(outcome, str):
            raise MedAIError(f"audit record: outcome: expected a string such as 'ok', got {outcome!r}")
        digest = event.get("input_sha256")
        if digest is not None and not (isinstance(digest, str) and _SHA256_RE.match(digest)):
            raise MedAIError("audit record: input_sha256: expected 64 lower-case hex digits")
        status = event.get("status_code")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise MedAIError(f"audit record: status_code: expected an integer, got {status!r}")
        fields: dict[str, Any] = {name: _clean(name, event.get(name)) for name in _STR_FIELDS}
        fields["outcome"] = _clean("outcome", outcome)
        fields["status_code"] = status
        fields["detail"] = _clean_detail(event.get("detail"))
        return fields

    def _ensure_head(self) -> None:
        if self._head_ready:
            return
        with self._engine.connect() as conn:
            if conn.scalar(select(_head_t.c.id).where(_head_t.c.id == _HEAD_ID)) is None:
                if self._sqlite:
                    stmt = "INSERT OR IGNORE INTO audit_chain_head (id, seq, hash) VALUES (:id, 0, :h)"
                else:
                    stmt = (
                        "INSERT INTO audit_chain_head (id, seq, hash) VALUES (:id, 0, :h) "
                        "ON CONFLICT (id) DO NOTHING"
                    )
                # A log that already has rows but lost its head is tampering: the head is not recreated
                # from scratch then (it would re-chain from genesis); verify() reports it.
                if conn.scalar(select(func.count()).select_from(_log_t)) == 0:
                    conn.execute(text(stmt), {"id": _HEAD_ID, "h": GENESIS_HASH})
                    conn.commit()
        self._head_ready = True

    def _lock_head(self, conn: Connection) -> tuple[int, str]:
        if self._sqlite:
            # Take SQLite's write lock before reading the head, so no other writer reads the same head.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            row = conn.execute(select(_head_t.c.seq, _head_t.c.hash).where(_head_t.c.id == _HEAD_ID)).first()
        else:
            row = conn.execute(
                select(_head_t.c.seq, _head_t.c.hash).where(_head_t.c.id == _HEAD_ID).with_for_update()
            ).first()
        if row is None:
            raise MedAIError(
                "audit chain head is missing while audit rows exist; the audit log was tampered with "
                "(run `medai audit verify`)"
            )
        return int(row[0]), str(row[1])

    # ------------------------------------------------------------------------------------- reading

    def head(self) -> AuditHead:
        """The current chain head; publish it elsewhere to anchor the chain against a full rewrite."""
        with self._engine.connect() as conn:
            row = conn.execute(select(_head_t.c.seq, _head_t.c.hash).where(_head_t.c.id == _HEAD_ID)).first()
        return AuditHead(0, GENESIS_HASH) if row is None else AuditHead(int(row[0]), str(row[1]))

    def _pages(self, conn: Connection, after: int, upto: int | None = None, since: datetime | None = None):
        cols = [_log_t.c[name] for name in (*HASHED_FIELDS, "hash")]
        while True:
            query = select(*cols).where(_log_t.c.seq > after).order_by(_log_t.c.seq).limit(_PAGE)
            if upto is not None:
                query = query.where(_log_t.c.seq <= upto)
            if since is not None:
                query = query.where(_log_t.c.ts >= since)
            rows = conn.execute(query).mappings().all()
            if not rows:
                return
            yield from rows
            after = rows[-1]["seq"]

    def verify(self, anchor: AuditHead | None = None) -> VerifyResult:
        """Check the whole chain; the first problem found is reported with its seq.

        ``anchor``: a head saved earlier (:meth:`head`); the chain must still contain it unchanged.
        """
        with self._engine.connect() as conn:
            head_row = conn.execute(
                select(_head_t.c.seq, _head_t.c.hash).where(_head_t.c.id == _HEAD_ID)
            ).first()
            conn.rollback()
            if head_row is None:
                count = conn.scalar(select(func.count()).select_from(_log_t))
                conn.rollback()
                if count:
                    return VerifyResult(False, 0, None, "audit chain head row is missing (deleted?)")
                return VerifyResult(True, 0)
            head_seq, head_hash = int(head_row[0]), str(head_row[1])
            expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
            for row in self._pages(conn, 0, upto=head_seq):
                seq = row["seq"]
                if seq != expected_seq:
                    return VerifyResult(
                        False,
                        checked,
                        expected_seq,
                        f"row seq {expected_seq} is missing (deleted?); next is {seq}",
                    )
                if row["prev_hash"] != prev_hash:
                    return VerifyResult(
                        False,
                        checked,
                        seq,
                        f"row seq {seq}: prev_hash does not match the hash of the row before",
                    )
                if row_hash(row) != row["hash"]:
                    return VerifyResult(False, checked, seq, f"row seq {seq}: hash mismatch (row was edited)")
                if anchor is not None and seq == anchor.seq and row["hash"] != anchor.hash:
                    return VerifyResult(
                        False, checked, seq, f"row seq {seq}: hash differs from the saved anchor"
                    )
                prev_hash = row["hash"]
                expected_seq += 1
                checked += 1
            conn.rollback()
            last_seq = expected_seq - 1
            if last_seq != head_seq or prev_hash != head_hash:
                return VerifyResult(
                    False,
                    checked,
                    last_seq + 1,
                    f"log ends at seq {last_seq} but the chain head records seq {head_seq} "
                    "(rows deleted from the end?)",
                )
            if anchor is not None and anchor.seq > head_seq:
                return VerifyResult(
                    False,
                    checked,
                    head_seq + 1,
                    f"the saved anchor is at seq {anchor.seq}, past the log's end",
                )
            # Rows past the head we checked are fine if the head has moved on since (concurrent writers).
            # Look for them first and re-read the head after: a row is committed together with a head that
            # covers it, so a head read later can never lag a genuine row, whatever the isolation level.
            stray = conn.scalar(select(func.min(_log_t.c.seq)).where(_log_t.c.seq > head_seq))
            conn.rollback()
            if stray is not None:
                now_head = conn.scalar(select(_head_t.c.seq).where(_head_t.c.id == _HEAD_ID))
                conn.rollback()
                if int(stray) > int(now_head or 0):
                    return VerifyResult(False, checked, int(stray), f"row seq {stray} lies past the chain head")
        return VerifyResult(True, checked)

    def export(self, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Rows as JSON-ready dicts (``ts`` ISO-8601 UTC), oldest first; ``since`` (naive = UTC) filters
        ``ts >= since``. Each dict keeps ``seq``, ``prev_hash`` and ``hash`` so it can be re-checked
        with :func:`row_hash`. Streams in pages; safe to use while the service writes."""
        since_utc = _as_utc(since) if since is not None else None
        with self._engine.connect() as conn:
            for row in self._pages(conn, 0, since=since_utc):
                item = dict(row)
                item["ts"] = _ts_text(item["ts"])
                yield item

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(_log_t)) or 0)


# ---------------------------------------------------------------------------------- background writer


class _Slot:
    """Completion of one queued item: a row (``seq`` once written) or a flush marker."""

    __slots__ = ("callback", "done", "error", "seq")

    def __init__(self, callback=None) -> None:
        self.done = threading.Event()
        self.seq: int | None = None
        self.error: BaseException | None = None
        self.callback = callback  # called in the writer thread once the slot is done

    def finish(self) -> None:
        self.done.set()
        if self.callback is not None:
            try:
                self.callback(self)
            except Exception as exc:  # noqa: BLE001 - e.g. the event loop closed; the caller is gone
                log.warning("audit completion callback failed: %s", type(exc).__name__)


class BackgroundAuditWriter:
    """Writes audit rows from a background thread in batches (one transaction, one fsync per batch).

    ``submit(..., wait=False)`` only enqueues (microseconds); the row reaches the database within
    milliseconds, and a crash of the whole process in that window loses it (use ``wait=True`` where
    that is not acceptable). ``submit(..., wait=True)`` returns the row's ``seq`` once it is committed:
    a *group commit* — concurrent requests share one transaction and one fsync, so throughput scales
    while each request is still durably audited before it is answered.

    Nothing is dropped silently: a full queue makes ``submit`` block (back-pressure), and a batch that
    fails to write is retried with back-off; after ``max_retries`` failures the writer stops taking
    new rows, logs the error, keeps the unwritten rows in :attr:`pending`, and :meth:`submit`,
    :meth:`flush` and :meth:`close` raise. Call :meth:`close` on shutdown.
    """

    def __init__(
        self,
        log: AuditLog,
        *,
        max_batch: int = 256,
        max_queue: int = 10_000,
        max_retries: int = 5,
        retry_delay_s: float = 0.2,
    ) -> None:
        self.log = log
        self.max_batch = max_batch
        self.max_retries = max_retries
        self.retry_delay_s = retry_delay_s
        self._queue: queue.Queue[tuple[dict[str, Any] | None, _Slot | None]] = queue.Queue(maxsize=max_queue)
        self._error: BaseException | None = None
        self.pending: list[dict[str, Any]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="medai-audit-writer", daemon=True)
        self._thread.start()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise MedAIError(
                f"audit writer failed and holds {len(self.pending)} unwritten rows: {self._error}"
            )

    def submit(
        self, action: str, *, wait: bool = False, timeout: float | None = None, **fields: Any
    ) -> int | None:
        """Queue one row (same arguments as :meth:`AuditLog.record`; validated now, in the caller).

        ``wait=True``: block until it is committed and return its ``seq``.
        """
        self._raise_if_failed()
        if self._closed:
            raise MedAIError("audit writer is closed")
        event = self.log._prepare(dict(fields, action=action))  # checked once, here: bad input fails fast
        slot = _Slot() if wait else None
        self._queue.put((event, slot))
        if slot is None:
            return None
        if not slot.done.wait(timeout):
            raise MedAIError(f"audit row not written within {timeout} s; it stays queued")
        if slot.error is not None:
            self._raise_if_failed()
            raise MedAIError(f"audit row not written: {slot.error}")
        return slot.seq

    def submit_async(self, action: str, **fields: Any):
        """Queue one row and return an :class:`asyncio.Future` (of the running loop) that resolves to the
        row's ``seq`` once it is committed — a group commit without blocking the event loop. Raises
        :class:`MedAIError` at once when the writer has failed, is closed, or its queue is full."""
        import asyncio

        self._raise_if_failed()
        if self._closed:
            raise MedAIError("audit writer is closed")
        event = self.log._prepare(dict(fields, action=action))
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def resolve(slot: _Slot) -> None:
            def settle() -> None:
                if future.done():
                    return
                if slot.error is not None:
                    future.set_exception(MedAIError(f"audit row not written: {slot.error}"))
                else:
                    future.set_result(slot.seq)

            loop.call_soon_threadsafe(settle)

        try:
            self._queue.put_nowait((event, _Slot(resolve)))
        except queue.Full:
            raise MedAIError("audit writer queue is full") from None
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything submitted so far is written (or raise the writer's error)."""
        slot = _Slot()
        self._queue.put((None, slot))
        if not slot.done.wait(timeout):
            raise MedAIError(f"audit writer did not flush within {timeout} s")
        self._raise_if_failed()

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put((None, None))
        self._thread.join(timeout)
        self._raise_if_failed()

    def _run(self) -> None:
        import time

        stop = False
        while not stop:
            item = self._queue.get()
            events: list[dict[str, Any]] = []
            slots: list[_Slot | None] = []
            markers: list[_Slot] = []
            while True:
                event, slot = item
                if event is None and slot is None:
                    stop = True
                elif event is None:
                    markers.append(slot)  # type: ignore[arg-type]
                else:
                    events.append(event)
                    slots.append(slot)
                if stop or len(events) >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            error: BaseException | None = self._error
            seqs: list[int] = []
            if events and error is None:
                for attempt in range(self.max_retries + 1):
                    try:
                        seqs = self.log._append(events)
                        break
                    except Exception as exc:  # noqa: BLE001 - kept and re-raised to callers
                        log.warning("audit write failed (attempt %d): %s", attempt + 1, exc)
                        if attempt == self.max_retries:
                            log.error("audit writer giving up; %d rows unwritten: %s", len(events), exc)
                            error = self._error = exc
                        else:
                            time.sleep(self.retry_delay_s * (2**attempt))
            if events and error is not None:
                self.pending.extend(events)
            for index, slot in enumerate(slots):
                if slot is not None:
                    if error is None:
                        slot.seq = seqs[index]
                    else:
                        slot.error = error
                    slot.finish()
            for marker in markers:
                marker.finish()
