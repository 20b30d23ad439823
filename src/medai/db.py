"""One SQLAlchemy base and engine factory for every table MedAI keeps (registry, keys, audit, jobs).

The URL comes from :func:`medai.config.database_url` unless given: a SQLite file by default, any
SQLAlchemy URL (``postgresql+psycopg://...``) in production.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import UTC

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: SQLite's busy handler alone then
    fcntl = None

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator

from medai import config


class Base(DeclarativeBase):
    """Declarative base shared by all MedAI tables, so ``create_all`` makes the whole schema."""


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every back-end (SQLite drops the zone; this puts it back).

    A naive datetime is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def get_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the configured database), created once per process, schema ready."""
    url = normalize_url(url or config.database_url())
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            import medai.db_models  # noqa: F401  (registers every table on Base)

            Base.metadata.create_all(engine)
            _engines[url] = engine
        return engine


def session_factory(url: str | None = None) -> sessionmaker:
    return sessionmaker(get_engine(url), expire_on_commit=False)


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


_writer_locks: dict[str, threading.Lock] = {}


@contextmanager
def sqlite_writer(engine: Engine):
    """Hold the write turn of ``engine``'s SQLite file while a transaction that writes runs inside.

    Writers on the request path (the audit appenders, the monitoring recorder; in every server process) queue
    on one lock file, ``<database>.write-lock``, before taking SQLite's write lock: a waiter wakes the moment
    the lock is free, where SQLite's own busy handler polls with sleeps of up to 100 ms - an audit commit that
    found the monitoring recorder's transaction open slept, and every request waiting for its audit row with
    it. PostgreSQL queues writers on its own row locks, and an in-memory database has one connection: a no-op
    there."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or fcntl is None:
        yield
        return
    path = f"{database}.write-lock"
    with _lock:
        thread_lock = _writer_locks.setdefault(path, threading.Lock())
    # opened per transaction: a handle shared over fork would be one lock for parent and children
    with thread_lock, open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
