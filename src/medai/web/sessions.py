"""Server-side sessions of the web page: an API key is exchanged for one at sign-in and never kept.

The browser holds only a random session token (256 bits) in an ``HttpOnly``, ``SameSite=Strict`` cookie
(``Secure`` and ``__Host-`` prefixed under TLS). The database keeps ``sha256(token)`` (a stolen database
gives no usable cookie), the key's public id, the session's CSRF token and its times. Each request
re-reads the key's row, so a revoked or expired key ends its sessions at once. A session ends after
``idle_s`` without a request or ``absolute_s`` after sign-in, whichever comes first, and at sign-out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from medai.db import Base, UTCDateTime, session_factory
from medai.errors import NotFoundError

__all__ = ["SessionStore", "WebSession", "WebSessionRow"]

_TOUCH_EVERY = timedelta(seconds=15)  # last_seen is written at most this often (idle expiry precision)


class WebSessionRow(Base):
    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    csrf: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


@dataclass(frozen=True)
class WebSession:
    key_id: str
    csrf: str
    created_at: datetime
    expires_at: datetime

    def csrf_ok(self, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.csrf.encode())


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Web sessions in the MedAI database (shared by every worker process)."""

    def __init__(self, url: str | None = None, idle_s: float = 1800.0, absolute_s: float = 12 * 3600.0) -> None:
        self._sessions = session_factory(url)
        self.idle = timedelta(seconds=idle_s)
        self.absolute = timedelta(seconds=absolute_s)

    def create(self, key_id: str) -> tuple[str, WebSession]:
        """A new session for a verified key: (the cookie token, the session)."""
        token = secrets.token_urlsafe(32)
        now = _now()
        row = WebSessionRow(
            token_sha256=_digest(token),
            key_id=key_id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.absolute,
        )
        with self._sessions.begin() as session:
            session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
            session.add(row)
        return token, WebSession(row.key_id, row.csrf, row.created_at, row.expires_at)

    def get(self, token: str | None) -> WebSession:
        """The live session of a cookie token; :class:`NotFoundError` when there is none, or it has run
        out (idle or absolute expiry), in which case its row is deleted."""
        if not token or len(token) > 128:
            raise NotFoundError("no session")
        digest, now = _digest(token), _now()
        with self._sessions.begin() as session:  # commits on leaving: an expired row is deleted for good
            row = session.get(WebSessionRow, digest)
            if row is None:
                live = None
            elif now >= row.expires_at or now - row.last_seen_at >= self.idle:
                session.delete(row)
                live = None
            else:
                if now - row.last_seen_at >= _TOUCH_EVERY:
                    row.last_seen_at = now
                live = WebSession(row.key_id, row.csrf, row.created_at, row.expires_at)
        if live is None:
            raise NotFoundError("no session, or it has expired")
        return live

    def end(self, token: str | None) -> None:
        if token:
            with self._sessions.begin() as session:
                session.execute(delete(WebSessionRow).where(WebSessionRow.token_sha256 == _digest(token)))

    def end_all_for(self, key_id: str) -> int:
        """End every session of a key (its revocation ends them anyway, at their next request)."""
        with self._sessions.begin() as session:
            return session.execute(delete(WebSessionRow).where(WebSessionRow.key_id == key_id)).rowcount or 0

    def count(self) -> int:
        with self._sessions() as session:
            return len(session.scalars(select(WebSessionRow.token_sha256)).all())
