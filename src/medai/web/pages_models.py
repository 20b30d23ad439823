"""Sign-in and sign-out, the registry table, each model's card and report, promote/retire (admins)."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from medai.serving.keys import AuthError
from medai.serving.security import _client
from medai.tasks.task import HEADLINE_METRICS
from medai.web.context import (
    CSRF_FIELD,
    PRE_CSRF_COOKIE,
    NotSignedIn,
    PageRefused,
    SignedIn,
    audit_page,
    check_origin,
    form_of,
    render,
    safe_next,
    signed_in,
    web_state,
)
from medai.web.security import REPORT_CSP

router = APIRouter(include_in_schema=False)

STAGES = ("none", "staging", "production", "retired")
NOTICES = {
    "stage": "The stage was changed.",
    "signed_out": "You are signed out.",
}


# --------------------------------------------------------------------------------------- sign in/out


@router.get("/")
async def home(request: Request) -> RedirectResponse:
    return RedirectResponse("/models", status_code=303)


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str | None = None, notice: str | None = None) -> HTMLResponse:  # noqa: A002
    try:
        await signed_in(request)
        return RedirectResponse(safe_next(next), status_code=303)
    except NotSignedIn:
        pass
    return _sign_in_form(request, next, NOTICES.get(notice or ""), None, 200)


def _sign_in_form(request: Request, next_: str | None, notice: str | None, error: str | None,
                  status: int) -> HTMLResponse:
    web = web_state(request)
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        {"title": "Sign in", "pre_csrf": token, "next": safe_next(next_), "notice": notice, "error": error},
        status=status,
    )
    response.set_cookie(PRE_CSRF_COOKIE, token, max_age=900, httponly=True, samesite="strict",
                        secure=web.secure(request), path="/sign-in")
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> HTMLResponse:
    """Exchange an API key for a session. The key is checked exactly as the API checks it (same store, same
    limit on failed attempts per address) and then forgotten; only the session's token goes to the browser."""
    check_origin(request)
    state, web = request.app.state.medai, web_state(request)
    form = await request.form(max_files=0, max_fields=8)
    next_ = str(form.get("next") or "")
    expected = request.cookies.get(PRE_CSRF_COOKIE) or ""
    given = str(form.get(CSRF_FIELD) or "")
    if not expected or not secrets.compare_digest(expected.encode(), given.encode()):
        raise PageRefused(403, "The sign-in form's security token is missing or wrong; reload the page and try "
                          "again.", "csrf")
    failures, address = state.auth_failures, _client(request.scope)
    if failures is not None and not failures.peek(address).allowed:
        audit_page(request, "web_sign_in", {"reason": "too_many_failures"})
        return _sign_in_form(request, next_, None, "Too many failed sign-ins from this address; wait a minute.",
                             429)
    token = str(form.get("api_key") or "").strip()
    try:
        key = state.keys.verify_cached(token) or await run_in_threadpool(state.keys.verify, token)
    except AuthError as exc:
        if failures is not None and exc.reason != "missing":
            failures.hit(address)
        audit_page(request, "web_sign_in", {"reason": exc.reason})
        return _sign_in_form(request, next_, None, f"Not signed in: {exc}.", 401)
    old = request.cookies.get(web.cookie_name(request))
    if old:
        await run_in_threadpool(web.sessions.end, old)  # no session fixation: always a fresh session
    session_token, _session = await run_in_threadpool(web.sessions.create, key.key_id)
    audit_page(request, "web_sign_in", key=key)
    response = RedirectResponse(safe_next(next_), status_code=303)
    response.set_cookie(
        web.cookie_name(request), session_token, httponly=True, samesite="strict", secure=web.secure(request),
        path="/", max_age=int(web.sessions.absolute.total_seconds()),
    )
    response.delete_cookie(PRE_CSRF_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, user: SignedIn = Depends(signed_in)) -> RedirectResponse:
    await form_of(request, user, max_files=0)
    web = web_state(request)
    await run_in_threadpool(web.sessions.end, request.cookies.get(web.cookie_name(request)))
    audit_page(request, "web_sign_out", key=user.key)
    response = RedirectResponse("/sign-in?notice=signed_out", status_code=303)
    response.delete_cookie(web.cookie_name(request), path="/", secure=web.secure(request), httponly=True,
                           samesite="strict")
    return response


# ------------------------------------------------------------------------------------------- models


def headline(metrics: dict[str, Any], kind: str) -> dict[str, Any] | None:
    name = HEADLINE_METRICS.get(kind, "auroc")
    entry = (metrics.get("test") or {}).get(name)
    if not isinstance(entry, dict) or entry.get("value") is None:
        return None
    return {"name": name, "value": entry.get("value"), "low": entry.get("ci_low"), "high": entry.get("ci_high")}


def api_error(result) -> PageRefused:
    reason = {401: "not_signed_in", 403: "forbidden", 404: "not_found"}.get(result.status, "api_error")
    return PageRefused(result.status if result.status >= 400 else 500, result.detail, reason, audited=True)


@router.get("/models")
async def models_page(request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    result = await user.api(request, "GET", "/v1/models")
    if not result.ok:
        raise api_error(result)
    rows = []
    for m in result.json()["models"]:
        rows.append(dict(m, headline=headline(m.get("metrics") or {}, m["kind"])))
    return render(request, "models.html", {"title": "Models", "models": rows})


def render_markdown(text: str | None) -> str:
    """A model card (Markdown written by the road) as HTML; raw HTML in it is escaped, never passed on."""
    if not text:
        return ""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    # the card's headings sit under the page's "Model card" (h2): shift them two levels down
    return re.sub(r"<(/?)h([1-6])>", lambda m: f"<{m.group(1)}h{min(int(m.group(2)) + 2, 6)}>", md.render(text))


async def monitoring_summary(request: Request, user: SignedIn, name: str) -> dict[str, Any] | None:
    """The model page's monitoring panel: what the monitoring API reports of the served version (records seen,
    outcomes joined, drifted columns, current alerts); ``None`` when there is nothing to show (monitoring off,
    no served records yet, or the API refused)."""
    result = await user.api(request, "GET", f"/v1/models/{quote(name, safe='')}/monitoring",
                            params={"plots": "false"})
    if not result.ok:
        return None
    report = result.json()
    counts, status = report.get("counts") or {}, report.get("status") or {}
    if not counts.get("served"):
        return None
    drifted = list(status.get("drifted") or [])
    summary = (f"Version {report.get('version')}: {counts['served']} record(s) served since training, "
               f"{counts.get('with_outcome', 0)} with a known outcome. "
               + (f"Drift in the latest window: {', '.join(map(str, drifted))}." if drifted
                  else "No drift in the latest window."))
    return {"summary": summary, "alerts": list(status.get("current_alerts") or []), "drift": bool(drifted)}


@router.get("/models/{name}")
async def model_page(name: str, request: Request, notice: str | None = None,
                     user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    result = await user.api(request, "GET", f"/v1/models/{quote(name, safe='')}")
    if not result.ok:
        raise api_error(result)
    detail = result.json()
    for version in detail["versions"]:
        version["headline"] = headline(version.get("metrics") or {}, version["kind"])
    return render(
        request,
        "model.html",
        {
            "title": name,
            "model": detail,
            "card_html": render_markdown(detail.get("model_card")),
            "stages": STAGES,
            "notice": NOTICES.get(notice or ""),
            "monitoring": await monitoring_summary(request, user, name),
        },
    )


@router.get("/models/{name}/versions/{version}/report")
async def report_page(name: str, version: int, request: Request, user: SignedIn = Depends(signed_in)):
    result = await user.api(request, "GET", f"/v1/models/{quote(name, safe='')}/versions/{version}/report")
    if not result.ok:
        raise api_error(result)
    return HTMLResponse(result.body, headers={"content-security-policy": REPORT_CSP})


@router.post("/models/{name}/versions/{version}/stage")
async def set_stage(name: str, version: int, request: Request, user: SignedIn = Depends(signed_in)):
    form = await form_of(request, user, max_files=0)
    stage = str(form.get("stage") or "")
    result = await user.api(request, "PUT", f"/v1/admin/models/{quote(name, safe='')}/versions/{version}/stage",
                            json_body={"stage": stage})
    if not result.ok:
        raise api_error(result)
    return RedirectResponse(f"/models/{quote(name, safe='')}?notice=stage", status_code=303)
