"""API keys for the MedAI service: creation, verification, revocation and the role model.

Key format
----------
``medai_<key_id>_<secret>``: ``key_id`` is a public 12-hex-digit id (shown in listings, audit rows
and error messages), ``secret`` is 256 random bits (43 url-safe base64 characters). The plaintext
key is returned exactly once, by :meth:`KeyStore.create`; the database keeps only a salted hash.

Storage and verification cost
-----------------------------
Each key is stored as ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` (scrypt, per-key 16-byte random
salt, ``n=2**14, r=8, p=1``: about 16 MiB and some tens of milliseconds per hash). Lookup is by
``key_id`` (indexed), comparison with :func:`hmac.compare_digest`.

A strong hash costs too much to pay on every request, so a verified key is cached in-process for
``cache_ttl_s`` seconds (default 5), keyed by ``sha256(plaintext)`` — the plaintext itself is
never kept. A cached hit costs a few microseconds. Cache hits still re-check the key's expiry
time, :meth:`KeyStore.revoke` drops the key from this process's cache at once, and in every other
worker process a revocation takes effect within ``cache_ttl_s`` seconds. ``cache_ttl_s=0`` turns the
cache off. Because the secret is 256 random bits, even the plain sha256 cache key cannot be
brute-forced; scrypt is defence in depth for a leaked database.

Under concurrency the cache never collapses into a stampede of hashes:

- *refresh ahead*: once half the TTL has passed, the next hit still answers from the cache and hands one
  background refresh to a helper thread, which re-reads the key's row (role, revocation, expiry) — no
  scrypt, since the stored hash the secret was checked against is unchanged — and renews the entry, or
  drops it when the key was revoked, expired or re-hashed. A key in steady use never leaves the cache;
- *single flight*: a cold verification (scrypt) runs once per key at a time; every other request for the
  same key waits for that one result instead of hashing again.

``last_used_at`` is written on a cold verification at most once a minute per key, so the hot path
never writes to the database.

Roles
-----
``viewer`` may read models; ``clinician`` may also predict, explain and run jobs; ``admin`` may do
everything (see :data:`ROLE_PERMISSIONS`, :func:`role_allows`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import CheckConstraint, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from medai.db import Base, UTCDateTime, session_factory
from medai.errors import MedAIError, NotFoundError

log = logging.getLogger(__name__)

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "ROLE_PERMISSIONS",
    "ApiKey",
    "AuthError",
    "KeyRecord",
    "KeyStore",
    "PermissionDeniedError",
    "check_key_name",
    "check_secret",
    "hash_secret",
    "parse_key",
    "role_allows",
]

# --------------------------------------------------------------------------------------------- roles

PERMISSIONS: tuple[str, ...] = (
    "models:read",
    "models:write",
    "predict",
    "explain",
    "jobs",
    "audit:read",
    "admin",
)
ROLES: tuple[str, ...] = ("viewer", "clinician", "admin")
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"models:read"}),
    "clinician": frozenset({"models:read", "predict", "explain", "jobs"}),
    "admin": frozenset(PERMISSIONS),
}


def role_allows(role: str, permission: str) -> bool:
    """Whether ``role`` grants ``permission``. An unknown role grants nothing.

    An unknown *permission* is a programming error (a typo in a route) and raises ``ValueError``.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; expected one of {', '.join(PERMISSIONS)}")
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


# -------------------------------------------------------------------------------------------- errors


class AuthError(MedAIError):
    """An API key was missing, malformed, unknown, wrong, revoked or expired (HTTP 401).

    ``reason`` is one of ``missing``, ``malformed``, ``unknown``, ``invalid``, ``revoked``,
    ``expired``. The message never contains the key's secret.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class PermissionDeniedError(MedAIError):
    """A valid key whose role does not grant the permission a request needs (HTTP 403)."""

    def __init__(self, message: str, key_id: str, role: str, permission: str) -> None:
        super().__init__(message)
        self.key_id = key_id
        self.role = role
        self.permission = permission


# --------------------------------------------------------------------------------------------- table


class ApiKey(Base):
    """One API key. ``key_hash`` is ``scrypt$n$r$p$salt$hash``; the key itself is never stored."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('viewer', 'clinician', 'admin')", name="ck_api_keys_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True, index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True)
class KeyRecord:
    """What is known about a key, without its secret or hash."""

    id: int
    key_id: str
    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and (now or _now()) >= self.expires_at

    @property
    def active(self) -> bool:
        return not self.revoked and not self.expired()

    def allows(self, permission: str) -> bool:
        return role_allows(self.role, permission)

    def require(self, permission: str) -> None:
        """Raise :class:`PermissionDeniedError` unless this key's role grants ``permission``."""
        if not self.allows(permission):
            raise PermissionDeniedError(
                f"API key {self.key_id} (role {self.role}) is not allowed to {permission}",
                self.key_id,
                self.role,
                permission,
            )

    @classmethod
    def _from_row(cls, row: ApiKey) -> KeyRecord:
        return cls(
            id=row.id,
            key_id=row.key_id,
            name=row.name,
            role=row.role,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )


# ------------------------------------------------------------------------------------------- hashing

KEY_PREFIX = "medai"
_KEY_RE = re.compile(r"^medai_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_LAST_USED_EVERY = timedelta(seconds=60)


def _now() -> datetime:
    return datetime.now(UTC)


def hash_secret(secret: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> str:
    """A self-describing salted scrypt hash of ``secret`` (``scrypt$n$r$p$salt$hash``)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches a hash made by :func:`hash_secret` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
        digest = hashlib.scrypt(
            secret.encode(),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def parse_key(plaintext: object) -> tuple[str, str]:
    """Split ``medai_<key_id>_<secret>`` into ``(key_id, secret)``; :class:`AuthError` if malformed."""
    if plaintext is None or plaintext == "":
        raise AuthError("no API key given", "missing")
    if not isinstance(plaintext, str):
        raise AuthError("malformed API key: expected a string 'medai_<key id>_<secret>'", "malformed")
    match = _KEY_RE.match(plaintext.strip())
    if match is None:
        raise AuthError(
            "malformed API key: expected 'medai_<12 hex digit key id>_<43 character secret>'", "malformed"
        )
    return match.group(1), match.group(2)


# --------------------------------------------------------------------------------------------- names

MAX_EXPIRES_DAYS = 36_500  # a hundred years; more overflows a date
_NAME_FORBIDDEN = set("<>&")


def check_key_name(name: object) -> str:
    """A key's display name, NFC-normalised and stripped: 1-200 printable characters, no control or
    format characters (NUL, bidirectional overrides, zero-width marks) and no markup characters
    (``< > &``), so a name shows the same everywhere it is printed; :class:`MedAIError` otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise MedAIError("API key name: expected a non-empty string")
    name = unicodedata.normalize("NFC", name.strip())
    if len(name) > 200:
        raise MedAIError(f"API key name: expected at most 200 characters, got {len(name)}")
    for position, char in enumerate(name, start=1):
        category = unicodedata.category(char)
        if category[0] == "C" or category in ("Zl", "Zp") or char in _NAME_FORBIDDEN:
            what = f"U+{ord(char):04X}" if category[0] in "CZ" else repr(char)
            raise MedAIError(
                f"API key name: character {position} ({what}) is not allowed; use letters, digits, spaces "
                "and punctuation other than < > &"
            )
    return name


# --------------------------------------------------------------------------------------------- store


class KeyStore:
    """API keys kept in the MedAI database (``url``: any SQLAlchemy URL; default the configured one).

    Thread-safe; one instance per process is meant to be shared by all requests. ``cache_ttl_s``: how
    long a verified key is trusted without re-checking the database (0 = never cache); ``clock``: a
    monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        cache_ttl_s: float = 5.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = session_factory(url)
        self._clock = clock
        self.cache_ttl_s = float(cache_ttl_s)
        self._cache_size = int(cache_size)
        # sha256(plaintext) -> (expires at, refresh after, record, the stored hash the secret matched)
        self._cache: OrderedDict[bytes, tuple[float, float, KeyRecord, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[bytes, Future] = {}
        self._refreshing: set[bytes] = set()
        self._refresher: ThreadPoolExecutor | None = None
        self.cold_checks = 0  # scrypt verifications run (for tests and benchmarks)

    # ---------------------------------------------------------------------------------- management

    def create(self, name: str, role: str, expires_in_days: float | None = None) -> tuple[KeyRecord, str]:
        """Create a key; returns its record and the plaintext key, which is never shown again."""
        name = check_key_name(name)
        if role not in ROLES:
            raise MedAIError(f"API key role: expected one of {', '.join(ROLES)}, got {role!r}")
        expires_at = None
        if expires_in_days is not None:
            if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int | float):
                raise MedAIError(
                    f"expires_in_days: expected a positive number of days, got {expires_in_days!r}"
                )
            if not 0 < expires_in_days <= MAX_EXPIRES_DAYS:
                raise MedAIError(
                    f"expires_in_days: expected a number of days above 0 and at most {MAX_EXPIRES_DAYS}, "
                    f"got {expires_in_days!r}"
                )
        created_at = _now()
        if expires_in_days is not None:
            expires_at = created_at + timedelta(days=expires_in_days)
        secret = secrets.token_urlsafe(32)
        key_hash = hash_secret(secret)
        with self._sessions.begin() as session:
            for _attempt in range(5):
                key_id = secrets.token_hex(6)
                if session.scalar(select(ApiKey.id).where(ApiKey.key_id == key_id)) is None:
                    break
            else:  # pragma: no cover - 48-bit ids do not collide five times in a row
                raise RuntimeError("could not draw a unique key id")
            row = ApiKey(
                key_id=key_id,
                name=name,
                role=role,
                key_hash=key_hash,
                created_at=created_at,
                expires_at=expires_at,
            )
            session.add(row)
            session.flush()
            record = KeyRecord._from_row(row)
        return record, f"{KEY_PREFIX}_{key_id}_{secret}"

    def get(self, key_id: str) -> KeyRecord:
        with self._sessions() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
            if row is None:
                raise NotFoundError(f"no API key with id {key_id!r}")
            return KeyRecord._from_row(row)

    def list(self, include_revoked: bool = True) -> list[KeyRecord]:  # noqa: A003
        """All keys, oldest first (never with secrets or hashes)."""
        query = select(ApiKey).order_by(ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        with self._sessions() as session:
            return [KeyRecord._from_row(row) for row in session.scalars(query)]

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key (idempotent: a key revoked twice keeps its first ``revoked_at``)."""
        with self._sessions.begin() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id).with_for_update())
            if row is None:
                raise NotFoundError(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = _now()
            record = KeyRecord._from_row(row)
        with self._lock:
            for digest in [d for d, entry in self._cache.items() if entry[2].key_id == key_id]:
                del self._cache[digest]
        return record

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # -------------------------------------------------------------------------------- verification

    def verify_cached(self, plaintext: str | None) -> KeyRecord | None:
        """The record of a key verified within ``cache_ttl_s`` (microseconds, no database, no scrypt), or
        ``None`` when the key must be verified in full; :class:`AuthError` for a malformed or expired key.
        A hit past half its TTL starts one background refresh (see the module docs)."""
        parse_key(plaintext)
        if self.cache_ttl_s <= 0:
            return None
        digest = hashlib.sha256(plaintext.strip().encode()).digest()  # type: ignore[union-attr]
        with self._lock:
            hit = self._cache.get(digest)
            if hit is None:
                return None
            expires, refresh_after, record, stored = hit
            now = self._clock()
            if expires <= now:
                del self._cache[digest]
                return None
            if record.expired():
                del self._cache[digest]
                raise AuthError(f"API key {record.key_id} expired", "expired")
            refresh = refresh_after <= now and digest not in self._refreshing
            if refresh:
                self._refreshing.add(digest)
        if refresh:
            self._schedule_refresh(digest, record.key_id, stored)
        return record

    def _schedule_refresh(self, digest: bytes, key_id: str, stored: str) -> None:
        try:
            if self._refresher is None:
                with self._lock:
                    if self._refresher is None:
                        self._refresher = ThreadPoolExecutor(1, thread_name_prefix="medai-key-refresh")
            self._refresher.submit(self._refresh, digest, key_id, stored)
        except RuntimeError:  # interpreter shutting down: the entry simply runs out
            with self._lock:
                self._refreshing.discard(digest)

    def _refresh(self, digest: bytes, key_id: str, stored: str) -> None:
        """Re-read a cached key's row and renew (or drop) its entry; no scrypt (the hash is unchanged)."""
        try:
            started = self._clock()
            with self._sessions() as session:
                row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
                record = None if row is None else KeyRecord._from_row(row)
                current = None if row is None else row.key_hash
            with self._lock:
                if record is None or current != stored or not record.active:
                    self._cache.pop(digest, None)
                elif digest in self._cache:
                    self._cache[digest] = self._entry(started, record, stored)
        except Exception as exc:  # noqa: BLE001 - the entry then runs out and the next request verifies
            log.warning("API key refresh failed: %s", type(exc).__name__)
        finally:
            with self._lock:
                self._refreshing.discard(digest)

    def _entry(self, now: float, record: KeyRecord, stored: str) -> tuple[float, float, KeyRecord, str]:
        return (now + self.cache_ttl_s, now + self.cache_ttl_s / 2, record, stored)

    def verify(self, plaintext: str | None) -> KeyRecord:
        """The record of a valid key; :class:`AuthError` for a missing, malformed, unknown, wrong,
        revoked or expired key. Cheap (microseconds) for a key verified within ``cache_ttl_s``; a cold
        check runs once per key at a time (concurrent callers share its result)."""
        cached = self.verify_cached(plaintext)
        if cached is not None:
            return cached
        key_id, secret = parse_key(plaintext)
        digest = hashlib.sha256(plaintext.strip().encode()).digest()  # type: ignore[union-attr]
        with self._lock:
            future = self._inflight.get(digest)
            owner = future is None
            if owner:
                future = self._inflight[digest] = Future()
        if not owner:
            return future.result()  # raises the owner's AuthError for a wrong key
        try:
            now_mono = self._clock()
            record, stored = self._verify_cold(key_id, secret)
            if self.cache_ttl_s > 0:
                with self._lock:
                    self._cache[digest] = self._entry(now_mono, record, stored)
                    self._cache.move_to_end(digest)
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(digest, None)

    def _verify_cold(self, key_id: str, secret: str) -> tuple[KeyRecord, str]:
        with self._sessions() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
            if row is None:
                raise AuthError("unknown API key", "unknown")
            record = KeyRecord._from_row(row)
            stored = row.key_hash
        with self._lock:
            self.cold_checks += 1
        if not check_secret(secret, stored):
            raise AuthError("invalid API key", "invalid")
        now = _now()
        if record.revoked_at is not None:
            raise AuthError(f"API key {key_id} was revoked", "revoked")
        if record.expired(now):
            raise AuthError(f"API key {key_id} expired", "expired")
        if record.last_used_at is None or now - record.last_used_at >= _LAST_USED_EVERY:
            with self._sessions.begin() as session:
                row = session.get(ApiKey, record.id)
                if row is not None:
                    row.last_used_at = now
        return record, stored
