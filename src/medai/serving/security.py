"""Authentication, authorisation, rate limiting and the audit context of each request.

Every router except the health check is created with ``dependencies=[Depends(require(PERMISSION))]``,
so a route cannot be added to it without a key check. :func:`require`:

1. reads ``Authorization: Bearer <key>`` and verifies the key (:class:`medai.serving.keys.KeyStore`;
   401 for a missing/malformed/unknown/wrong/revoked/expired key),
2. checks the key's role grants the permission (403),
3. counts the request against the key's rate limit (429 with ``Retry-After``),
4. fills the request's audit box (key id, role, action, route), which :class:`AuditMiddleware` writes
   as one audit row — with the final status code — once the response has been sent.

Denied requests (401/403/429) are audited too. Audit rows never hold request bodies: handlers add only
``input_sha256``, the model and its version.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medai.serving.keys import AuthError, KeyRecord, PermissionDeniedError, role_allows

log = logging.getLogger(__name__)

AUDIT_SCOPE_KEY = "medai.audit"

__all__ = ["AUDIT_SCOPE_KEY", "AuditMiddleware", "RateLimited", "audit_box", "principal", "require"]


class RateLimited(Exception):
    """A key went over its request budget (HTTP 429)."""

    def __init__(self, key_id: str, retry_after_s: float) -> None:
        super().__init__(f"rate limit exceeded for API key {key_id}; retry after {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


def audit_box(request: Request) -> dict[str, Any]:
    """The mutable audit facts of this request (filled by dependencies and handlers)."""
    box = request.scope.get(AUDIT_SCOPE_KEY)
    if box is None:
        box = request.scope[AUDIT_SCOPE_KEY] = {}
    return box


def principal(request: Request) -> KeyRecord:
    """The verified key of this request (set by :func:`require`)."""
    return request.scope["medai.principal"]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("malformed Authorization header: expected 'Bearer <API key>'", "malformed")
    return value.strip()


def require(permission: str):
    """A FastAPI dependency admitting only keys whose role grants ``permission``."""
    role_allows("viewer", permission)  # a typo in a permission name fails at import time

    async def dependency(request: Request) -> KeyRecord:
        state = request.app.state.medai
        box = audit_box(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or request.url.path
        if request.url.path.startswith("/v1/") and not template.startswith("/v1/"):
            template = "/v1" + template  # included routers keep their own paths; the app mounts them at /v1
        box.setdefault("route", template)
        box.setdefault("action", getattr(route, "name", None) or permission)
        box["permission"] = permission
        token = _bearer(request)
        try:
            if token is None:
                raise AuthError("no API key given; send 'Authorization: Bearer <API key>'", "missing")
            # a key seen within the cache TTL is checked in microseconds; only a cold check (scrypt) uses a thread
            record = state.keys.verify_cached(token) or await run_in_threadpool(state.keys.verify, token)
        except AuthError as exc:
            box["detail"] = {"reason": exc.reason}
            raise
        box["key_id"], box["role"] = record.key_id, record.role
        record.require(permission)  # PermissionDeniedError -> 403
        verdict = state.limiter.hit(record.key_id)
        if not verdict.allowed:
            raise RateLimited(record.key_id, verdict.retry_after_s)
        request.scope["medai.principal"] = record
        return record

    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403, 429):
        return "denied"
    return f"error:{status}"


class AuditMiddleware:
    """Writes one audit row per request that passed through :func:`require` (granted or denied).

    The row goes to the :class:`~medai.privacy.audit.BackgroundAuditWriter` after the response has
    been sent, so auditing adds microseconds to a request; the writer is flushed on shutdown.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        box: dict[str, Any] = {}
        scope[AUDIT_SCOPE_KEY] = box
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if box.get("action"):
                self._write(scope, box, status["code"])

    @staticmethod
    def _write(scope: Scope, box: dict[str, Any], status: int) -> None:
        state = getattr(scope.get("app"), "state", None)
        service = getattr(state, "medai", None) if state is not None else None
        if service is None:
            return
        client = scope.get("client")
        detail = dict(box.get("detail") or {})
        if box.get("error_class"):
            detail["error"] = box["error_class"]
        try:
            service.audit_sink.submit(
                str(box["action"]),
                key_id=box.get("key_id"),
                role=box.get("role"),
                route=box.get("route"),
                method=scope.get("method"),
                model=box.get("model"),
                model_version=None if box.get("model_version") is None else str(box["model_version"]),
                input_sha256=box.get("input_sha256"),
                outcome=_outcome(status),
                status_code=status,
                client=client[0] if client else None,
                detail=detail or None,
            )
        except Exception as exc:  # noqa: BLE001 - never let auditing crash the response path
            log.error("audit record could not be queued: %s", type(exc).__name__)


class AuditBatcher:
    """Holds audit rows for ``linger_s`` seconds and hands them to the
    :class:`~medai.privacy.audit.BackgroundAuditWriter` in one burst, so the writer commits them in one
    transaction (one fsync) instead of one per request. ``flush``/``close`` hand over what is held at once.
    A crash of the whole process loses at most the rows of the last ``linger_s`` (plus what the writer
    holds), the same kind of window the writer's ``submit(wait=False)`` already has."""

    def __init__(self, writer, linger_s: float = 0.02) -> None:
        self.writer = writer
        self.linger_s = float(linger_s)
        self._buffer: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.linger_s > 0:
            self._thread = threading.Thread(target=self._run, daemon=True, name="medai-audit-batcher")
            self._thread.start()

    def submit(self, action: str, **fields: Any) -> None:
        if self._thread is None:
            self.writer.submit(action, **fields)
            return
        with self._lock:
            self._buffer.append((action, fields))

    def _drain(self) -> None:
        with self._lock:
            items, self._buffer = self._buffer, []
        for action, fields in items:
            try:
                self.writer.submit(action, **fields)
            except Exception as exc:  # noqa: BLE001 - logged without the row's content
                log.error("audit row could not be queued: %s", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self.linger_s):
            if self._buffer:
                self._drain()

    def flush(self, timeout: float | None = None) -> None:
        self._drain()
        self.writer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._drain()
        self.writer.close(timeout)


__all__ += ["AuditBatcher", "AuthError", "PermissionDeniedError"]
