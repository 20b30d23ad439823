"""The MedAI service: :func:`create_app` builds the FastAPI application over the registry.

Routers per resource under ``/v1`` (models, predict, jobs, FHIR, admin, OpenAPI); each router carries its
permission as a dependency (:func:`medai.serving.security.require`), so only ``GET /health`` answers
without an API key. Interactive docs are off; the OpenAPI document is served to any valid key at
``GET /v1/openapi.json``.

Protection: a request body limit (413), authentication before any body is read, per-key rate limits and
a per-address limit on failed authentications (429 + ``Retry-After``; Redis-backed when ``MEDAI_REDIS_URL``
is set, checked at start-up, 503 when it goes away), a time limit on model calls (504), generic 500 bodies
(no stack traces), CORS only when origins are configured. Every authenticated or denied request is audited
(hash-chained rows, committed before the response starts, concurrent requests sharing one commit).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medai import config
from medai.errors import IntegrityError, MedAIError, NotFoundError
from medai.serving import heap
from medai.serving.keys import AuthError, PermissionDeniedError
from medai.serving.ratelimit import RateLimiterUnavailable
from medai.serving.redact import redact_paths
from medai.serving.routers.common import FieldErrors, UnsupportedMediaType
from medai.serving.security import (
    AuditMiddleware,
    AuthMiddleware,
    RateLimited,
    audit_box,
    denial_response,
    unavailable_response,
)

log = logging.getLogger("medai.serving")

__all__ = ["ServiceState", "Settings", "create_app"]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclass
class Settings:
    """Service settings; every field has an environment variable (read when the field is left default)."""

    database_url: str | None = None  # MEDAI_DATABASE_URL (default SQLite in MEDAI_HOME)
    redis_url: str | None = field(default_factory=lambda: os.environ.get("MEDAI_REDIS_URL") or None)
    max_body_bytes: int = field(default_factory=lambda: _env_int("MEDAI_MAX_BODY_BYTES", 32 * 1024 * 1024))
    rate_limit: int = field(default_factory=lambda: _env_int("MEDAI_RATE_LIMIT", 1200))
    rate_window_s: float = field(default_factory=lambda: _env_float("MEDAI_RATE_WINDOW_S", 60.0))
    # requests a worker process works on at once before it sheds more with 429 (0: no limit); more than a few per
    # core only adds queueing delay, so under overload the excess is refused at once instead of answered late
    max_in_flight: int = field(default_factory=lambda: _env_int("MEDAI_MAX_IN_FLIGHT", 4 * (os.cpu_count() or 1)))
    predict_timeout_s: float = field(default_factory=lambda: _env_float("MEDAI_PREDICT_TIMEOUT_S", 60.0))
    # decoded-size limits checked from each file's header before decoding (issue 9, finding 1)
    max_image_pixels: int = field(default_factory=lambda: _env_int("MEDAI_MAX_IMAGE_PIXELS", 64_000_000))
    max_volume_voxels: int = field(default_factory=lambda: _env_int("MEDAI_MAX_VOLUME_VOXELS", 160_000_000))
    max_request_pixels: int = field(default_factory=lambda: _env_int("MEDAI_MAX_REQUEST_PIXELS", 400_000_000))
    job_timeout_s: float = field(default_factory=lambda: _env_float("MEDAI_JOB_TIMEOUT_S", 1800.0))
    job_retention_s: float = field(default_factory=lambda: _env_float("MEDAI_JOB_RETENTION_S", 7 * 86400.0))
    cors_origins: list[str] = field(
        default_factory=lambda: [o for o in os.environ.get("MEDAI_CORS_ORIGINS", "").split(",") if o.strip()]
    )
    job_worker: bool = True
    job_poll_s: float = 1.0
    job_lease_s: float = 60.0
    model_cache_size: int = 16
    # models loaded at start-up, so no request waits for a load: "production" (the production version of each
    # model that has one), "all" (the default version of every model), "none", or a comma-separated list of
    # model names (their default versions); at most model_cache_size in all
    preload_models: str = field(default_factory=lambda: os.environ.get("MEDAI_PRELOAD_MODELS", "production"))
    default_version_ttl_s: float = 2.0
    key_cache_ttl_s: float = 5.0
    # failed authentications allowed per client address and window before it gets 429 without a key check
    auth_fail_limit: int = field(default_factory=lambda: _env_int("MEDAI_AUTH_FAIL_LIMIT", 50))
    auth_fail_window_s: float = field(default_factory=lambda: _env_float("MEDAI_AUTH_FAIL_WINDOW_S", 60.0))
    deid_secret: bytes | None = None  # default: MEDAI_HOME/deid.key, created once
    # the web page (medai.web): session idle and absolute expiry; Secure cookies (None: when TLS is on)
    web_idle_s: float = field(default_factory=lambda: _env_float("MEDAI_WEB_IDLE_S", 1800.0))
    web_absolute_s: float = field(default_factory=lambda: _env_float("MEDAI_WEB_ABSOLUTE_S", 12 * 3600.0))
    web_secure_cookies: bool | None = field(default_factory=lambda: _web_secure_default())
    web: bool = True  # serve the web page at /
    # record predictions for drift and performance monitoring (summaries, never inputs): MEDAI_MONITORING=0 turns off
    monitoring: bool = field(default_factory=lambda: os.environ.get("MEDAI_MONITORING", "1") not in ("0", "false"))
    monitor_flush_s: float = 1.0  # the recorder merges the requests of this long into one stored batch


def _web_secure_default() -> bool | None:
    from medai.web import secure_cookies_from_env

    return secure_cookies_from_env()


def _service_metrics():
    """Prometheus metrics, when the monitor extra is installed."""
    try:
        from medai.monitoring.metrics import ServiceMetrics
    except ImportError:
        return None
    return ServiceMetrics()


def _deid_secret() -> bytes:
    """The installation's de-identification secret (keys the UID mapping), made once, readable by the owner
    only; several workers starting together agree on one (atomic create-if-absent through a hard link)."""
    return config.secret_file("deid.key")


class ServiceState:
    """Everything one server process shares between requests (one instance per app)."""

    def __init__(self, settings: Settings) -> None:
        from medai.privacy.audit import AuditLog, BackgroundAuditWriter
        from medai.registry import Registry
        from medai.serving.fhir import LoincMaps
        from medai.serving.jobs import JobStore
        from medai.serving.keys import KeyStore
        from medai.serving.limits import job_budget
        from medai.serving.ratelimit import RateLimiter

        self.settings = settings
        url = settings.database_url
        self.registry = Registry(url)
        self.keys = KeyStore(url, cache_ttl_s=settings.key_cache_ttl_s)
        self.audit = AuditLog(url)
        self.audit_writer = BackgroundAuditWriter(self.audit)
        self.audit_sink = self.audit_writer  # rows are committed before each response (group commit)
        self.limiter = RateLimiter.from_url(settings.redis_url, settings.rate_limit, settings.rate_window_s)
        self.in_flight = 0  # /v1 requests this process is working on (counted on the event loop by AuthMiddleware)
        self.auth_failures = (
            RateLimiter.from_url(
                settings.redis_url,
                settings.auth_fail_limit,
                settings.auth_fail_window_s,
                prefix="medai:authfail:",
            )
            if settings.auth_fail_limit > 0
            else None
        )
        self.loinc = LoincMaps(url)
        self.jobs = JobStore(
            url,
            lease_s=settings.job_lease_s,
            retention_s=settings.job_retention_s,
            budget_factory=lambda: job_budget(settings),
        )
        self.deid_secret = settings.deid_secret or _deid_secret()
        from medai.monitoring.store import MonitorStore

        self.monitor_store = MonitorStore(url)
        self.metrics = _service_metrics()
        self.recorder = None  # the monitoring writer, started with the app
        self.uploads = config.home() / "uploads"
        self._models: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._defaults: dict[tuple[str, int | None], tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[tuple[str, int], threading.Lock] = {}
        self.worker = None

    # ------------------------------------------------------------------------------------- models

    def record(self, name: str, version: int | None = None):
        """The registry record of ``name`` (default version cached for a moment: hot path)."""
        key = (name, version)
        now = time.monotonic()
        hit = self._defaults.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = self.registry.get(name, version)
        self._defaults[key] = (now + self.settings.default_version_ttl_s, record)
        return record

    def forget(self, name: str) -> None:
        """Drop cached defaults after a stage change (this process; others within the TTL)."""
        for key in [k for k in self._defaults if k[0] == name]:
            self._defaults.pop(key, None)

    def load_model(self, record) -> Any:
        """The loaded model of a record, verified against the registry's checksums once per process."""
        key = (record.name, record.version)
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            lock = self._load_locks.setdefault(key, threading.Lock())
        with lock:
            model = self._models.get(key)
            if model is None:
                from medai.road.model import load_model

                model = load_model(record.artifact_path, expected_manifest=record.manifest)
                with self._lock:
                    self._models[key] = model
                    while len(self._models) > self.settings.model_cache_size:
                        self._models.popitem(last=False)
                heap.settle()  # the model lives as long as the process: keep full GC passes from walking it
        return model

    def preload(self) -> list[str]:
        """Load the models ``settings.preload_models`` names; returns their refs. A model that fails to load is
        logged by name and left to fail on its first request, as it would without preloading."""
        choice = self.settings.preload_models.strip()
        if choice in ("", "none"):
            return []
        if choice in ("production", "all"):
            names = sorted({r.name for r in self.registry.list_models() if choice == "all" or r.stage == "production"})
        else:
            names = [n.strip() for n in choice.split(",") if n.strip()]
        loaded = []
        for name in names[: self.settings.model_cache_size]:
            try:
                record = self.record(name)
                self.load_model(record)
                loaded.append(record.ref)
            except Exception as exc:  # noqa: BLE001 - never keeps the service from starting
                log.warning("preloading model %r failed: %s", name, type(exc).__name__)
        return loaded

    def clean_leftovers(self) -> None:
        """What a crash left behind: registrations that never committed, request uploads, job files."""
        try:
            counts = self.registry.cleanup()
            if any(counts.values()):
                log.warning("removed leftovers of interrupted registrations: %s", counts)
        except Exception as exc:  # noqa: BLE001 - never keeps the service from starting
            log.warning("registry cleanup failed: %s", type(exc).__name__)
        cutoff = time.time() - max(600.0, 2 * self.settings.predict_timeout_s)
        if self.uploads.is_dir():  # uploads live for one request; older ones were left by a crash
            for entry in self.uploads.iterdir():
                try:
                    if entry.stat().st_mtime < cutoff:
                        shutil.rmtree(entry, ignore_errors=True)
                except OSError:
                    pass
        try:
            self.jobs.purge()
        except Exception as exc:  # noqa: BLE001
            log.warning("job cleanup failed: %s", type(exc).__name__)

    # --------------------------------------------------------------------------------------- jobs

    def run_job(self, row, folder: Path) -> bytes:
        from medai.serving.routers.jobs import run_job

        return run_job(self, row, folder)

    def start(self) -> None:
        # a shared store that is down is reported now, not as failures on every request
        self.limiter.ping()
        self.clean_leftovers()
        if self.settings.monitoring and self.recorder is None:
            from medai.monitoring.recorder import Recorder

            self.recorder = Recorder(self.monitor_store, metrics=self.metrics, flush_s=self.settings.monitor_flush_s)
        if self.settings.job_worker and self.worker is None:
            from medai.serving.jobs import JobWorker

            self.worker = JobWorker(self.jobs, self.run_job, poll_s=self.settings.job_poll_s)
            self.worker.start()
        self.preload()
        heap.settle()

    def observer(self, record, model, record_ids=None):
        """The road's ``observe`` hook for one prediction request (``None`` when monitoring is off)."""
        if self.recorder is None:
            return None
        return self.recorder.observer(record.name, record.version, model, record_ids)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close(timeout=10)
            self.recorder = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        try:
            self.audit_writer.close(timeout=30)
        finally:
            self.limiter.close()
            if self.auth_failures is not None:
                self.auth_failures.close()


# ------------------------------------------------------------------------------------- middleware


class _BodyTooLarge(Exception):
    status_code = 413


class BodyLimitMiddleware:
    """413 for a request body over ``limit`` bytes: by Content-Length up front, or counted as it streams."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, send)
                    return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        message = f"request body too large; the limit is {self.limit} bytes"
        from medai.web.security import is_page_path

        if is_page_path(scope["path"]):  # a person sent it through the web page: a page that says so
            from medai.web.context import too_large_page

            response = too_large_page(self.limit)
        else:
            response = JSONResponse({"detail": message}, 413)
        await response({"type": "http"}, _no_receive, send)


class InternalErrorMiddleware:
    """Turns an unexpected exception into a generic 500 and logs only its type, so neither the client nor
    the server log sees a stack trace or an exception message (which may quote input values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _BodyTooLarge:
            raise
        except Exception as exc:  # noqa: BLE001 - the point of this middleware
            log.error("internal error on %s %s: %s", scope.get("method"), scope.get("path"), type(exc).__name__)
            box = scope.get("medai.audit")
            if isinstance(box, dict):
                box.setdefault("error_class", type(exc).__name__)
            if not started:
                await JSONResponse({"detail": "internal server error"}, 500)(scope, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - never called by JSONResponse
    return {"type": "http.disconnect"}


# ------------------------------------------------------------------------------------------ errors


def _error(status: int, detail: str, errors: list | None = None, headers: dict | None = None) -> JSONResponse:
    # no server path reaches a client: a file is named by its last component (uploads have generic names)
    body: dict[str, Any] = {"detail": redact_paths(detail)}
    if errors is not None:
        body["errors"] = [dict(e, msg=redact_paths(str(e.get("msg", "")))) for e in errors]
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuthError)
    @app.exception_handler(PermissionDeniedError)
    @app.exception_handler(RateLimited)
    async def _denied(request: Request, exc: Exception):
        return denial_response(exc)

    @app.exception_handler(RateLimiterUnavailable)
    async def _unavailable(request: Request, exc: RateLimiterUnavailable):
        log.error("rate limiter unavailable on %s", request.url.path)
        audit_box(request)["error_class"] = "RateLimiterUnavailable"
        return unavailable_response()

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError):
        log.error("database unavailable on %s: %s", request.url.path, type(exc.orig).__name__)
        audit_box(request)["error_class"] = "OperationalError"
        return unavailable_response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = []
        for item in exc.errors():
            loc = [p for p in item.get("loc", ()) if isinstance(p, str | int)]
            kind = item.get("type", "value_error")
            msg = (
                "malformed JSON: " + str(item.get("ctx", {}).get("error", ""))
                if kind == "json_invalid"
                else item.get("msg", "")
            )
            errors.append({"loc": loc, "msg": msg, "type": kind})
        audit_box(request)["error_class"] = "validation"
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return _error(422, f"invalid request: {where}: {first['msg']}" if where else first["msg"], errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(FieldErrors)
    async def _fields(request: Request, exc: FieldErrors):
        audit_box(request)["error_class"] = "validation"
        return _error(422, str(exc), exc.errors)

    @app.exception_handler(UnsupportedMediaType)
    async def _media(request: Request, exc: UnsupportedMediaType):
        return _error(415, str(exc))

    @app.exception_handler(NotFoundError)
    async def _missing(request: Request, exc: NotFoundError):
        return _error(404, str(exc))

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError):
        log.error("integrity failure on %s: %s", request.url.path, exc)
        audit_box(request)["error_class"] = "IntegrityError"
        return _error(500, "a stored model failed its integrity check; an administrator has to look at it")

    @app.exception_handler(MedAIError)
    async def _medai(request: Request, exc: MedAIError):
        return _error(422, str(exc))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect):
        audit_box(request)["error_class"] = "ClientDisconnect"
        return _error(400, "the client closed the connection before the request body arrived")

    @app.exception_handler(TimeoutError)
    async def _timeout(request: Request, exc: TimeoutError):
        return _error(504, "the model did not answer in time")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        # the type only: a message could quote input values
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        audit_box(request)["error_class"] = type(exc).__name__
        return _error(500, "internal server error")


# ------------------------------------------------------------------------------------------- app


def _extend_openapi(app: FastAPI) -> None:
    """Add the schemas routes read by hand (predict's JSON body, the error body) to the OpenAPI document."""
    from fastapi.openapi.utils import get_openapi

    from medai.serving.schemas import ErrorResponse, PredictRequest

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in (PredictRequest, ErrorResponse):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            _document_errors(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_ERRORS = {
    "400": "the request could not be read",
    "401": "no API key, or a key that is unknown, wrong, revoked or expired",
    "403": "the key's role does not allow this",
    "404": "no such model, version, job or route",
    "405": "the route does not take this method",
    "413": "the request body is over the size limit",
    "415": "unsupported content type",
    "422": "invalid input; `detail` says what, `errors` lists each field",
    "429": "rate limit (per key) or too many failed authentications (per address); see Retry-After",
    "503": "a service the API depends on (database, audit log, rate limiter) is unavailable; see Retry-After",
    "504": "the model did not answer in time",
}


def _document_errors(doc: dict[str, Any]) -> None:
    """Every operation answers errors as :class:`ErrorResponse` (``detail`` + ``errors``): document that for
    every status the service can send, in place of FastAPI's own 422 shape, which the service never sends."""
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, description in _ERRORS.items():
                responses[status] = {"description": description, "content": content}
    schemas = doc.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    # every route but /health takes `Authorization: Bearer <API key>`
    doc.setdefault("components", {})["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key from `medai keys create`"}
    }
    for path, path_item in doc.get("paths", {}).items():
        for operation in path_item.values():
            if isinstance(operation, dict) and path != "/health":
                operation["security"] = [{"apiKey": []}]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The MedAI FastAPI application (state is created now; the job worker starts with the app)."""
    import medai
    from medai.serving.routers import admin, fhir, jobs, meta, models, monitoring, predict

    settings = settings or Settings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.start()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="MedAI model service",
        version=getattr(medai, "__version__", "0"),
        description="Authenticated, audited clinical prediction models. Send `Authorization: Bearer <key>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.medai = state

    @app.get("/health", tags=["health"], summary="Liveness (no authentication)")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": app.version}

    for module in (models, predict, jobs, fhir, admin, meta):
        app.include_router(module.router, prefix="/v1")
    for extra in (monitoring.router, monitoring.read_router, monitoring.admin_router):
        app.include_router(extra, prefix="/v1")
    app.include_router(monitoring.metrics_router)  # /metrics, where Prometheus looks (an API key still needed)
    from medai.modalities import list_modalities

    for modality in list_modalities():  # a modality's own routes, each router with its own role dependency
        for extra_router in modality.routers():
            app.include_router(extra_router, prefix="/v1")
    _install_error_handlers(app)
    _extend_openapi(app)
    if settings.web:  # the page for people at / (same app, same roles and audit trail as the API)
        from medai.web import install as install_web

        install_web(app, settings)
    # outermost last: body limit -> CORS -> audit (row committed before each answer) -> generic 500 ->
    # authentication and authorisation (before any route reads the body) -> routes
    app.add_middleware(AuthMiddleware)
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(AuditMiddleware)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if state.metrics is not None:  # counts and times every answer, 413s included
        from medai.monitoring.metrics import MetricsMiddleware

        app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    if settings.web:
        from medai.web.security import SecurityHeadersMiddleware

        # outermost: on every page answer, 413s included
        app.add_middleware(SecurityHeadersMiddleware, tls=settings.web_secure_cookies)
    return app


def iter_routes(app: FastAPI):
    """``(path, methods, route)`` for every route of ``app``, routers included (FastAPI >= 0.16x keeps
    included routers as lazy branches; this flattens them)."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                original = ctx.original_route
                yield ctx.path, set(getattr(original, "methods", None) or ()), original
        else:
            yield getattr(route, "path", ""), set(getattr(route, "methods", None) or ()), route
