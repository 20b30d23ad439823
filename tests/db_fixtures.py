"""Database fixtures: every database test runs on SQLite *and* on the real PostgreSQL server.

- ``database_url``: parametrized ``sqlite`` (a file in ``tmp_path``) and ``postgresql`` (the server at
  ``MEDAI_TEST_POSTGRES_URL``, default ``postgresql+psycopg://root@127.0.0.1:5432/test``). Each
  PostgreSQL test gets a fresh schema ``medai_test_<hex>``, selected through the connection's
  ``search_path``, dropped (CASCADE) afterwards. ``MEDAI_DATABASE_URL`` is set to the same URL, so code
  that reads the configured database sees it too.
- ``redis_url`` (+ ``redis_prefix``): ``MEDAI_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``;
  each test gets a unique key prefix, and every key under it is deleted afterwards.

Where a server does not answer (a laptop), its tests are skipped with a message saying so — but when
the environment variable ``CI`` is set they FAIL instead, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest

POSTGRES_URL = os.environ.get("MEDAI_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MEDAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

_probe_cache: dict[str, str | None] = {}


def _unavailable(what: str, error: str) -> None:
    message = f"{what} is not available ({error})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so this test fails instead of skipping")
    pytest.skip(f"{message}; start it or set CI to make this a failure")


def _postgres_error() -> str | None:
    """None when PostgreSQL answers, else why not (probed once per session)."""
    if "postgresql" not in _probe_cache:
        try:
            import psycopg
            from sqlalchemy.engine import make_url

            url = make_url(POSTGRES_URL)
            with psycopg.connect(
                host=url.host or "127.0.0.1",
                port=url.port or 5432,
                user=url.username,
                password=url.password,
                dbname=url.database,
                connect_timeout=3,
            ) as conn:
                conn.execute("SELECT 1")
            _probe_cache["postgresql"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not available"
            _probe_cache["postgresql"] = (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
            )
    return _probe_cache["postgresql"]


def _redis_error() -> str | None:
    if "redis" not in _probe_cache:
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
            client.ping()
            client.close()
            _probe_cache["redis"] = None
        except Exception as exc:  # noqa: BLE001
            _probe_cache["redis"] = f"{type(exc).__name__}: {exc}"
    return _probe_cache["redis"]


def _admin_engine():
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path, monkeypatch):
    """A SQLAlchemy URL for an empty MedAI database, once on SQLite and once on PostgreSQL."""
    from medai import db

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'medai_test.db'}"
        monkeypatch.setenv("MEDAI_DATABASE_URL", url)
        yield url
        db.dispose_all()
        return

    error = _postgres_error()
    if error is not None:
        _unavailable(f"PostgreSQL at {POSTGRES_URL}", error)
    from sqlalchemy import text

    schema = f"medai_test_{uuid.uuid4().hex[:16]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}', safe='')}"
    monkeypatch.setenv("MEDAI_DATABASE_URL", url)
    try:
        yield url
    finally:
        db.dispose_all()
        with admin.connect() as conn:
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"medai_test:{uuid.uuid4().hex[:16]}:"


@pytest.fixture
def redis_url(redis_prefix):
    """URL of the test Redis database; keys under ``redis_prefix`` are deleted afterwards."""
    error = _redis_error()
    if error is not None:
        _unavailable(f"Redis at {REDIS_URL}", error)
    yield REDIS_URL
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
