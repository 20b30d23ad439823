"""What every page handler shares: the signed-in user, CSRF checks, refusals, rendering."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from medai.errors import NotFoundError
from medai.serving.keys import KeyRecord, role_allows
from medai.serving.security import audit_box
from medai.web.api import ApiResult, call_api
from medai.web.sessions import SessionStore, WebSession

log = logging.getLogger("medai.web")

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
CSRF_FIELD = "csrf_token"
PRE_CSRF_COOKIE = "medai_signin_csrf"


@dataclass
class WebState:
    sessions: SessionStore
    secure_cookies: bool | None  # None: Secure exactly when the request came over TLS
    max_upload_bytes: int

    def secure(self, request: Request) -> bool:
        return self.secure_cookies if self.secure_cookies is not None else request.url.scheme == "https"

    def cookie_name(self, request: Request) -> str:
        # the __Host- prefix pins the cookie to this host and path / (browsers accept it only with Secure)
        return "__Host-medai_session" if self.secure(request) else "medai_session"


def web_state(request: Request) -> WebState:
    return request.app.state.medai_web


# ------------------------------------------------------------------------------------------ refusals


class PageRefused(Exception):
    """A page request refused: rendered as an HTML page with ``status`` and audited as ``web_<reason>``."""

    def __init__(self, status: int, message: str, reason: str, audited: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.audited = audited  # an API call refused it, and the API's row says so already


class NotSignedIn(PageRefused):
    def __init__(self, message: str = "You are not signed in, or your session has ended.") -> None:
        super().__init__(401, message, "not_signed_in")


def audit_page(request: Request, action: str, detail: dict[str, Any] | None = None,
               key: KeyRecord | None = None) -> None:
    """Have this page request written to the audit log (by the service's audit middleware)."""
    box = audit_box(request)
    route = request.scope.get("route")
    box["action"] = action
    box["route"] = getattr(route, "path", None) or request.url.path
    if key is not None:
        box["key_id"], box["role"] = key.key_id, key.role
    if detail:
        box["detail"] = dict(box.get("detail") or {}, **detail)


async def refused_page(request: Request, exc: PageRefused):
    """The handler of :class:`PageRefused`: a signed-out GET goes to the sign-in page; everything else gets
    an HTML page with the reason, and an audit row (method, route, status; never a value)."""
    user: SignedIn | None = request.scope.get("medai.web.user")
    if isinstance(exc, NotSignedIn) and request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/sign-in?next={_quote(target)}", status_code=303)
    if not exc.audited:
        audit_page(request, f"web_{exc.reason}", key=user.key if user else None)
    return render(request, "error.html", {"title": _TITLES.get(exc.status, "Refused"), "message": str(exc)},
                  status=exc.status, user=user)


_TITLES = {400: "Bad request", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found", 413: "Too large"}


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def safe_next(target: str | None) -> str:
    """A same-site path to go to after sign-in (never another host: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/models"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/models"
    return target


# ------------------------------------------------------------------------------------------- users


@dataclass
class SignedIn:
    key: KeyRecord
    session: WebSession

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def can(self, permission: str) -> bool:
        return role_allows(self.key.role, permission)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise PageRefused(403, f"Your role ({self.key.role}) does not allow this ({permission}).", "forbidden")

    async def api(self, request: Request, method: str, path: str, **kwargs: Any) -> ApiResult:
        """An API call as this user (same roles, validation and audit trail as a program's call)."""
        return await call_api(request, self.key, method, path, **kwargs)


async def signed_in(request: Request) -> SignedIn:
    """The FastAPI dependency of every signed-in page: the live session and its key, re-checked now (a
    revoked or expired key ends the session); :class:`NotSignedIn` otherwise."""
    cached = request.scope.get("medai.web.user")
    if cached is not None:
        return cached
    web = web_state(request)
    token = request.cookies.get(web.cookie_name(request))
    if not token:
        raise NotSignedIn()
    try:
        session = await run_in_threadpool(web.sessions.get, token)
        key = await run_in_threadpool(request.app.state.medai.keys.get, session.key_id)
    except NotFoundError:
        raise NotSignedIn() from None
    if not key.active:
        await run_in_threadpool(web.sessions.end, token)
        raise NotSignedIn("Your API key was revoked or has expired; sign in with a valid key.")
    user = SignedIn(key, session)
    request.scope["medai.web.user"] = user
    return user


def check_origin(request: Request) -> None:
    """A state-changing request must come from this site: refuse a foreign ``Origin`` (or ``Referer``)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return  # older clients send neither; the CSRF token still has to match
    parts = urlsplit(origin)
    if parts.netloc.lower() != (request.headers.get("host") or "").lower():
        raise PageRefused(403, "This form was sent from another site and was refused.", "csrf")


async def form_of(request: Request, user: SignedIn, max_files: int = 1):
    """The posted form, after the origin and CSRF checks (:class:`PageRefused` 403 when they fail)."""
    check_origin(request)
    form = await request.form(max_files=max_files, max_fields=400)
    if not user.session.csrf_ok(form.get(CSRF_FIELD)):
        raise PageRefused(403, "The form's security token is missing or wrong; reload the page and try again.",
                          "csrf")
    return form


# ------------------------------------------------------------------------------------------ render


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200,
           user: SignedIn | None = None) -> HTMLResponse:
    user = user or request.scope.get("medai.web.user")
    data = {"user": user, "csrf_field": CSRF_FIELD, "path": request.url.path}
    data.update(context or {})
    return templates.TemplateResponse(request, template, data, status_code=status)


def too_large_page(limit: int) -> HTMLResponse:
    """The 413 page of an upload over the service's body limit (sent before the body is read)."""
    from html import escape

    mb = limit / (1024 * 1024)
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Too large · MedAI</title>'
        '<link rel="stylesheet" href="/static/medai.css"></head><body><main id="main"><h1>Too large</h1>'
        f'<p role="alert">The file is too large: the limit is {escape(f"{mb:.0f}")} MB. '
        'Send a smaller file, or split a batch into several jobs.</p>'
        '<p><a href="/models">Back to the models</a></p></main></body></html>'

    )
    return HTMLResponse(body, status_code=413)
