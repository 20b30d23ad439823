"""API keys: create, verify, revoke, expire, roles; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from medai.db import get_engine
from medai.errors import MedAIError, NotFoundError
from medai.serving.keys import (
    PERMISSIONS,
    ROLE_PERMISSIONS,
    ApiKey,
    AuthError,
    KeyStore,
    PermissionDeniedError,
    role_allows,
)


def test_create_and_verify(database_url):
    store = KeyStore(database_url)
    record, key = store.create("alice's laptop", "clinician")
    assert key.startswith(f"medai_{record.key_id}_")
    assert record.role == "clinician" and record.name == "alice's laptop"
    assert record.revoked_at is None and record.expires_at is None
    assert record.created_at.tzinfo is not None

    # A fresh store (another worker) has an empty cache: this is the cold path.
    verified = KeyStore(database_url).verify(key)
    assert verified.key_id == record.key_id and verified.role == "clinician"
    assert store.verify(key) == store.verify(key)  # cached path returns the same record
    assert [r.key_id for r in store.list()] == [record.key_id]
    assert store.get(record.key_id).last_used_at is not None


def test_key_is_never_stored_in_plain_text(database_url):
    store = KeyStore(database_url)
    record, key = store.create("svc", "viewer")
    secret = key.split("_", 2)[2]
    with get_engine(database_url).connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert len(rows) == 1
    dumped = " ".join(str(value) for value in rows[0].values())
    assert secret not in dumped and key not in dumped
    assert rows[0]["key_hash"].startswith("scrypt$")
    assert record.key_id in dumped
    # The listing never carries a hash.
    assert not hasattr(store.list()[0], "key_hash")


def test_same_secret_different_salts(database_url):
    store = KeyStore(database_url)
    store.create("a", "viewer")
    store.create("b", "viewer")
    with get_engine(database_url).connect() as conn:
        hashes = [row[0] for row in conn.execute(text("SELECT key_hash FROM api_keys"))]
    salts = {h.split("$")[4] for h in hashes}
    assert len(salts) == 2


@pytest.mark.parametrize(
    "bad",
    [
        "",
        None,
        "medai",
        "medai_abc_def",
        "Bearer medai_0123456789ab_" + "x" * 43,
        "medai_0123456789AB_" + "x" * 43,  # upper-case key id
        "medai_0123456789ab_" + "x" * 42,  # short secret
        "other_0123456789ab_" + "x" * 43,
        12345,
    ],
)
def test_malformed_key(database_url, bad):
    store = KeyStore(database_url)
    with pytest.raises(AuthError) as info:
        store.verify(bad)
    assert info.value.reason in {"missing", "malformed"}
    if isinstance(bad, str) and len(bad) > 20:
        assert bad not in str(info.value) and "x" * 20 not in str(info.value)


def test_unknown_key_and_wrong_secret(database_url):
    store = KeyStore(database_url)
    record, key = store.create("svc", "viewer")
    unknown = "medai_0123456789ab_" + "A" * 43
    with pytest.raises(AuthError) as info:
        store.verify(unknown)
    assert info.value.reason == "unknown" and "A" * 43 not in str(info.value)

    wrong = f"medai_{record.key_id}_" + "B" * 43
    with pytest.raises(AuthError) as info:
        store.verify(wrong)
    assert info.value.reason == "invalid" and "B" * 43 not in str(info.value)
    assert isinstance(info.value, MedAIError)
    # The right key still works after a wrong one.
    assert store.verify(key).key_id == record.key_id


def test_revoke_takes_effect_at_once_in_this_process(database_url):
    store = KeyStore(database_url)
    record, key = store.create("svc", "admin")
    store.verify(key)  # now cached
    revoked = store.revoke(record.key_id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthError) as info:
        store.verify(key)
    assert info.value.reason == "revoked" and key not in str(info.value)
    assert store.revoke(record.key_id).revoked_at == revoked.revoked_at  # idempotent
    assert store.list(include_revoked=False) == []
    assert len(store.list()) == 1
    with pytest.raises(NotFoundError):
        store.revoke("0123456789ab")


def test_revoke_in_another_worker_takes_effect_after_cache_ttl(database_url):
    now = [1000.0]
    worker_a = KeyStore(database_url, cache_ttl_s=5, clock=lambda: now[0])
    worker_b = KeyStore(database_url)
    record, key = worker_a.create("svc", "clinician")

    worker_a.verify(key)
    worker_b.revoke(record.key_id)
    now[0] += 1
    assert worker_a.verify(key).key_id == record.key_id  # still cached (by design, < TTL)
    now[0] += 5
    with pytest.raises(AuthError, match="revoked"):
        worker_a.verify(key)

    uncached = KeyStore(database_url, cache_ttl_s=0)
    with pytest.raises(AuthError, match="revoked"):
        uncached.verify(key)


def test_expiry(database_url):
    store = KeyStore(database_url)
    record, key = store.create("temp", "viewer", expires_in_days=1)
    assert record.expires_at - record.created_at == timedelta(days=1)
    assert store.verify(key).key_id == record.key_id  # cached now
    # Move the expiry into the past directly in the table.
    with get_engine(database_url).begin() as conn:
        conn.execute(
            update(ApiKey.__table__)
            .where(ApiKey.__table__.c.key_id == record.key_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with pytest.raises(AuthError) as info:
        KeyStore(database_url).verify(key)
    assert info.value.reason == "expired"
    with pytest.raises(AuthError, match="expired"):
        KeyStore(database_url, cache_ttl_s=0).verify(key)


def test_expiry_checked_on_cached_hits(database_url, monkeypatch):
    import medai.serving.keys as keys_module

    store = KeyStore(database_url)
    record, key = store.create("temp", "viewer", expires_in_days=1)
    store.verify(key)  # cached now
    later = datetime.now(UTC) + timedelta(days=1, seconds=1)
    monkeypatch.setattr(keys_module, "_now", lambda: later)
    with pytest.raises(AuthError, match="expired"):
        store.verify(key)


@pytest.mark.parametrize(
    ("name", "role", "days", "field"),
    [
        ("", "viewer", None, "name"),
        ("x", "superuser", None, "role"),
        ("x", "viewer", 0, "expires_in_days"),
        ("x", "viewer", -3, "expires_in_days"),
        ("x", "viewer", "7", "expires_in_days"),
        ("x", "viewer", 1e9, "expires_in_days"),  # issue 9 finding 7: overflowed a date (500)
        ("a\x00b", "viewer", None, "U\\+0000"),  # finding 8: NUL
        ("\u202eevil", "viewer", None, "U\\+202E"),  # right-to-left override
        ("zero\u200bwidth", "viewer", None, "U\\+200B"),
        ("<script>alert(1)</script>", "viewer", None, "'<'"),
        ("line\nbreak", "viewer", None, "U\\+000A"),
    ],
)
def test_create_rejects_bad_input(database_url, name, role, days, field):
    store = KeyStore(database_url)
    with pytest.raises(MedAIError, match=field):
        store.create(name, role, expires_in_days=days)
    assert store.list() == []


def test_role_model(database_url):
    assert role_allows("viewer", "models:read")
    assert not role_allows("viewer", "predict")
    for permission in ("models:read", "predict", "explain", "jobs"):
        assert role_allows("clinician", permission)
    assert not role_allows("clinician", "admin")
    assert all(role_allows("admin", p) for p in PERMISSIONS)
    assert not role_allows("nobody", "models:read")
    with pytest.raises(ValueError):
        role_allows("admin", "delete-everything")
    assert set(ROLE_PERMISSIONS) == {"viewer", "clinician", "admin"}

    store = KeyStore(database_url)
    _, key = store.create("ro", "viewer")
    record = store.verify(key)
    assert record.allows("models:read") and not record.allows("predict")
    record.require("models:read")
    with pytest.raises(PermissionDeniedError) as info:
        record.require("predict")
    assert info.value.permission == "predict" and record.key_id in str(info.value)


def test_database_rejects_unknown_role(database_url):
    from sqlalchemy.exc import IntegrityError as SAIntegrityError

    KeyStore(database_url)  # creates the schema
    with pytest.raises(SAIntegrityError), get_engine(database_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (key_id, name, role, key_hash, created_at) "
                "VALUES ('0123456789ab', 'x', 'root', 'h', CURRENT_TIMESTAMP)"
            )
        )


def test_key_names_are_normalised_and_plain_punctuation_is_fine(database_url):
    store = KeyStore(database_url)
    record, _ = store.create("  Dr. O'Brien's laptop (ward 3) — e\u0301  ", "viewer")
    assert record.name == "Dr. O'Brien's laptop (ward 3) — \u00e9"


def test_cold_checks_are_single_flight(database_url, monkeypatch):
    """Issue 9, finding 5: when the cache ran out, every in-flight request re-ran scrypt. Now concurrent
    requests for one key share a single verification."""
    import medai.serving.keys as keys_module

    store = KeyStore(database_url)
    _record, key = store.create("busy", "clinician")
    store.clear_cache()
    real = keys_module.check_secret
    calls = []

    def slow_check(secret, stored):
        calls.append(1)
        time.sleep(0.2)  # hold the flight open while the others arrive
        return real(secret, stored)

    monkeypatch.setattr(keys_module, "check_secret", slow_check)
    results, errors = [], []

    def request():
        try:
            results.append(store.verify(key).key_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(results) == 24
    assert len(calls) == 1 and store.cold_checks == 1
    # a wrong secret for the same id is refused to every waiter, also from one check
    calls.clear()
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    failures = []

    def bad_request():
        try:
            store.verify(wrong)
        except AuthError as exc:
            failures.append(exc.reason)

    threads = [threading.Thread(target=bad_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == ["invalid"] * 8 and len(calls) == 1


def test_cache_is_refreshed_ahead_of_expiry_without_scrypt(database_url):
    now = [1000.0]
    worker = KeyStore(database_url, cache_ttl_s=10, clock=lambda: now[0])
    other = KeyStore(database_url)
    record, key = worker.create("steady", "clinician")
    worker.verify(key)
    assert worker.cold_checks == 1
    for _ in range(10):  # a key in steady use: hits past half the TTL renew it in the background
        now[0] += 6
        assert worker.verify_cached(key).key_id == record.key_id  # answered from the cache, never None
        _wait_refreshed(worker)
    assert worker.cold_checks == 1  # 60 s of use, one scrypt
    other.revoke(record.key_id)  # in another worker process
    now[0] += 6
    assert worker.verify_cached(key) is not None  # this hit schedules the refresh that sees the revocation
    _wait_refreshed(worker)
    assert worker.verify_cached(key) is None
    with pytest.raises(AuthError, match="revoked"):
        worker.verify(key)


def _wait_refreshed(store, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while store._refreshing and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not store._refreshing
