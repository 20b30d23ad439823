"""Authentication, authorisation, rate limiting and the audit context of each request.

Every router except the health check is created with ``dependencies=[Depends(require(PERMISSION))]``,
so a route cannot be added to it without a key check. :class:`AuthMiddleware` runs that same check for the
route a request matches *before* any route code reads the body (so a malformed body without a key is a 401,
never a 422), and for unknown paths under ``/v1`` too (no route enumeration without a key):

1. refuses an address that sent too many failed authentications lately (429, no key check, no scrypt),
2. reads ``Authorization: Bearer <key>`` and verifies the key (:class:`medai.serving.keys.KeyStore`;
   401 for a missing/malformed/unknown/wrong/revoked/expired key),
3. checks the key's role grants the permission (403),
4. sheds the request when this worker already works on ``max_in_flight`` others (429, ``Retry-After: 1``; the
   key's budget is not charged), so that under overload the excess is refused at once, not answered late,
5. counts the request against the key's rate limit (429 with ``Retry-After``),
6. fills the request's audit box (key id, role, action, route), which :class:`AuditMiddleware` writes
   as one audit row — with the final status code — and commits *before* the response starts: no request
   is answered before its audit row is durable (concurrent requests share one commit).

Denied requests (401/403/429) are audited too; requests refused for a flood of failed authentications
from one address are summarised (one row per address and second, with the count of the others). Audit
rows never hold request bodies: handlers add only ``input_sha256``, the model and its version.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medai.serving.keys import AuthError, KeyRecord, PermissionDeniedError, role_allows
from medai.serving.ratelimit import RateLimiterUnavailable

log = logging.getLogger(__name__)

AUDIT_SCOPE_KEY = "medai.audit"

__all__ = [
    "AUDIT_SCOPE_KEY",
    "AuditMiddleware",
    "AuthMiddleware",
    "Overloaded",
    "RateLimited",
    "TooManyFailures",
    "audit_box",
    "principal",
    "require",
]
AUDIT_TIMEOUT_S = 10.0


class RateLimited(Exception):
    """A key went over its request budget (HTTP 429)."""

    def __init__(self, key_id: str, retry_after_s: float) -> None:
        super().__init__(f"rate limit exceeded for API key {key_id}; retry after {retry_after_s:.1f} s")
        self.retry_after_s = retry_after_s


class TooManyFailures(RateLimited):
    """A client address sent too many failed authentications (HTTP 429, before any key check)."""

    def __init__(self, retry_after_s: float) -> None:
        Exception.__init__(
            self, f"too many failed authentications from this address; retry after {retry_after_s:.1f} s"
        )
        self.retry_after_s = retry_after_s


class Overloaded(RateLimited):
    """This worker already works on its limit of requests (HTTP 429, before the key's rate limit is counted)."""

    def __init__(self, in_flight: int, limit: int) -> None:
        Exception.__init__(
            self, f"the service is at capacity ({in_flight} requests in progress on this worker, limit {limit}); "
                  "retry after 1 s"
        )
        self.retry_after_s = 1.0


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


def _set_route(request: Request, box: dict[str, Any], permission: str) -> None:
    route = request.scope.get("route")
    template = getattr(route, "path", None) or request.url.path
    if request.url.path.startswith("/v1/") and not template.startswith("/v1/"):
        template = "/v1" + template  # included routers keep their own paths; the app mounts them at /v1
    box.setdefault("route", template)
    box.setdefault("action", getattr(route, "name", None) or permission)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def authenticate(request: Request) -> KeyRecord:
    """The verified key of ``request`` (cached in its scope), or :class:`AuthError` /
    :class:`TooManyFailures`. Failed attempts count against the client address."""
    record = request.scope.get("medai.key")
    if record is not None:  # verified earlier in this request, or a web session's key (medai.web.api)
        box = audit_box(request)
        box.setdefault("key_id", record.key_id)
        box.setdefault("role", record.role)
        return record
    state = request.app.state.medai
    box = audit_box(request)
    failures = state.auth_failures
    address = _client(request.scope)
    if failures is not None:
        verdict = failures.peek(address)
        if not verdict.allowed:
            box["detail"] = {"reason": "too_many_failures"}
            raise TooManyFailures(verdict.retry_after_s)
    try:
        token = _bearer(request)
        if token is None:
            raise AuthError("no API key given; send 'Authorization: Bearer <API key>'", "missing")
        # a key seen within the cache TTL is checked in microseconds; only a cold check (scrypt) uses a thread
        record = state.keys.verify_cached(token) or await run_in_threadpool(state.keys.verify, token)
    except AuthError as exc:
        box["detail"] = {"reason": exc.reason}
        if failures is not None and exc.reason != "missing":
            failures.hit(address)
        raise
    box["key_id"], box["role"] = record.key_id, record.role
    request.scope["medai.key"] = record
    return record


async def authorize(request: Request, permission: str) -> KeyRecord:
    """Authenticate, check the role grants ``permission`` (403) and count the request against the key's
    rate limit (429) — once per request: a second call for the same permission costs nothing."""
    granted = request.scope.setdefault("medai.granted", set())
    if permission in granted:
        return request.scope["medai.principal"]
    box = audit_box(request)
    box["permission"] = permission
    record = await authenticate(request)
    record.require(permission)  # PermissionDeniedError -> 403
    if not granted:  # one rate-limit hit per request, whatever it needs
        shed_when_overloaded(request)
        verdict = request.app.state.medai.limiter.hit(record.key_id)
        if not verdict.allowed:
            raise RateLimited(record.key_id, verdict.retry_after_s)
    request.scope["medai.principal"] = record
    granted.add(permission)
    return record


def shed_when_overloaded(request: Request) -> None:
    """:class:`Overloaded` when this worker works on more than ``max_in_flight`` requests, this one included."""
    state = request.app.state.medai
    limit = state.settings.max_in_flight
    if limit > 0 and state.in_flight > limit:
        audit_box(request)["detail"] = {"reason": "overloaded", "in_flight": state.in_flight, "limit": limit}
        raise Overloaded(state.in_flight, limit)


def require(permission: str):
    """A FastAPI dependency admitting only keys whose role grants ``permission``."""
    role_allows("viewer", permission)  # a typo in a permission name fails at import time

    async def dependency(request: Request) -> KeyRecord:
        _set_route(request, audit_box(request), permission)
        return await authorize(request, permission)

    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    dependency.medai_permission = permission  # type: ignore[attr-defined]
    return dependency


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403, 429):
        return "denied"
    return f"error:{status}"


# ------------------------------------------------------------------------------------ auth middleware


class _RouteTable:
    """Every ``/v1`` route's compiled path, methods, name and permission (built once per app)."""

    def __init__(self, app) -> None:
        from medai.serving.app import iter_routes

        self.routes: list[tuple[Any, set[str], str, str, str | None]] = []
        for path, methods, route in iter_routes(app):
            permission = None
            for dep in getattr(route, "dependencies", None) or ():
                permission = getattr(dep.dependency, "medai_permission", None) or permission
            regex, _fmt, _conv = compile_path(path)
            self.routes.append((regex, set(methods), path, getattr(route, "name", path), permission))

    def match(self, path: str, method: str) -> tuple[str | None, str | None, str | None]:
        """(template, route name, permission) of the route for ``path`` and ``method``; the template alone
        for a path whose route takes other methods; all None for an unknown path."""
        partial = None
        for regex, methods, template, name, permission in self.routes:
            if regex.match(path):
                if method in methods or (method == "HEAD" and "GET" in methods):
                    return template, name, permission
                partial = partial or template
        return partial, None, None


def error_body(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def denial_response(exc: BaseException) -> JSONResponse:
    if isinstance(exc, AuthError):
        return error_body(401, str(exc), {"WWW-Authenticate": "Bearer"})
    if isinstance(exc, PermissionDeniedError):
        return error_body(403, str(exc))
    if isinstance(exc, RateLimited):
        return error_body(429, str(exc), {"Retry-After": str(max(1, int(exc.retry_after_s + 0.999)))})
    return unavailable_response()


def unavailable_response() -> JSONResponse:
    return error_body(503, "a service the API depends on is unavailable; retry later", {"Retry-After": "5"})


class AuthMiddleware:
    """Authenticates and authorises every ``/v1`` request before the route reads its body (see the module
    docs). Requests a flood of failed authentications has blocked are summarised in the audit log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._table: _RouteTable | None = None
        self._blocked: dict[str, tuple[float, int]] = {}  # address -> (time of its last row, suppressed since)
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (scope["path"] == "/v1" or scope["path"].startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        if self._table is None:
            self._table = _RouteTable(scope["app"])
        template, name, permission = self._table.match(scope["path"], scope["method"])
        request = Request(scope, receive)
        service = request.app.state.medai
        service.in_flight += 1
        try:
            await self._admit(scope, receive, send, request, template, name, permission)
        finally:
            service.in_flight -= 1

    async def _admit(self, scope: Scope, receive: Receive, send: Send, request: Request, template: str | None,
                     name: str | None, permission: str | None) -> None:
        box = audit_box(request)
        box["route"] = template or "(no such route)"
        box["action"] = name or ("unknown_route" if template is None else "method_not_allowed")
        try:
            if permission is not None:
                await authorize(request, permission)
            else:
                await authenticate(request)  # unknown paths answer 404 only to a valid key
        except (AuthError, PermissionDeniedError, RateLimited) as exc:
            if isinstance(exc, TooManyFailures):
                self._summarise(box, _client(scope))
            await denial_response(exc)(scope, receive, send)
            return
        except RateLimiterUnavailable as exc:
            log.error("rate limiter unavailable: %s", type(exc).__name__)
            box["error_class"] = "RateLimiterUnavailable"
            await unavailable_response()(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _summarise(self, box: dict[str, Any], address: str) -> None:
        """At most one audit row a second for an address refused for too many failures, counting the others."""
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._blocked.get(address, (0.0, 0))
            if now - last < 1.0:
                self._blocked[address] = (last, suppressed + 1)
                box["suppressed"] = True
                return
            self._blocked[address] = (now, 0)
            if len(self._blocked) > 10_000:
                self._blocked = {a: v for a, v in self._blocked.items() if now - v[0] < 60}
        box["detail"] = {"reason": "too_many_failures", "suppressed_since_last_row": suppressed}


# ----------------------------------------------------------------------------------- audit middleware


class AuditMiddleware:
    """Writes one audit row per request that reached the key check (granted or denied) and waits until it
    is committed before the response starts: the response is held back until its row is durable (a group
    commit shared by concurrent requests), and a request whose row cannot be written is answered 503 instead.
    A request that fails before it answers (a body over the limit, an unexpected error) gets its row too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        box: dict[str, Any] = {}
        scope[AUDIT_SCOPE_KEY] = box
        state = {"started": False, "replaced": False}

        async def send_wrapper(message: Message) -> None:
            if state["replaced"]:
                return  # the original response was withheld: its row could not be written
            if message["type"] == "http.response.start" and not state["started"]:
                state["started"] = True
                if self._wanted(box) and not await self._write(scope, box, message["status"]):
                    state["replaced"] = True
                    await unavailable_response()(scope, _no_receive, send)
                    return
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            if not state["started"] and self._wanted(box):
                box.setdefault("error_class", type(exc).__name__)
                await self._write(scope, box, int(getattr(exc, "status_code", 500)))
            raise

    @staticmethod
    def _wanted(box: dict[str, Any]) -> bool:
        return bool(box.get("action")) and not box.get("suppressed")

    @staticmethod
    async def _write(scope: Scope, box: dict[str, Any], status: int) -> bool:
        """Commit the request's row; False when it could not be written (the caller then answers 503)."""
        from medai.privacy.audit import safe_detail

        app_state = getattr(scope.get("app"), "state", None)
        service = getattr(app_state, "medai", None) if app_state is not None else None
        if service is None:
            return True
        client = scope.get("client")
        detail = dict(box.get("detail") or {})
        if box.get("error_class"):
            detail["error"] = box["error_class"]
        if scope.get("medai.via"):
            detail["via"] = scope["medai.via"]  # an API call the web page made for a signed-in user
        try:
            future = service.audit_writer.submit_async(
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
                detail=safe_detail(detail) or None,
            )
            await asyncio.wait_for(future, AUDIT_TIMEOUT_S)
            return True
        except Exception as exc:  # noqa: BLE001 - the request is then answered 503, never without its row
            log.error("audit row could not be written: %s", type(exc).__name__)
            return False


async def _no_receive() -> Message:  # pragma: no cover - never called by JSONResponse
    return {"type": "http.disconnect"}


__all__ += ["AuthError", "PermissionDeniedError", "authenticate", "authorize"]
