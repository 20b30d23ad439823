"""One SQLAlchemy base and engine factory for every table MedAI keeps (registry, keys, audit, jobs).

The URL comes from :func:`medai.config.database_url` unless given: a SQLite file by default, any
SQLAlchemy URL (``postgresql+psycopg://...``) in production.
"""

from __future__ import annotations

import threading
from datetime import UTC

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


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
