"""Administration (admins only, through ``/v1/admin``): API keys (create — the new key shown once — and
revoke) and the audit log with filters and a "verify chain" button."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from medai.serving.keys import ROLES
from medai.web.context import SignedIn, form_of, render, signed_in, web_state
from medai.web.pages_models import api_error

router = APIRouter(include_in_schema=False)

_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
OUTCOMES = ("ok", "denied", "error")
AUDIT_ROWS = 200


async def _keys_page(request: Request, user: SignedIn, *, created: dict[str, Any] | None = None,
                     error: str | None = None, notice: str | None = None, form: dict[str, str] | None = None,
                     status: int = 200) -> HTMLResponse:
    user.require("admin")
    result = await user.api(request, "GET", "/v1/admin/keys")
    if not result.ok:
        raise api_error(result)
    keys = list(reversed(result.json()["keys"]))
    return render(request, "admin_keys.html", {
        "title": "API keys", "keys": keys, "roles": ROLES, "created": created, "error": error, "notice": notice,
        "form": form or {},
    }, status=status)


@router.get("/admin/keys")
async def keys_page(request: Request, notice: str | None = None, user: SignedIn = Depends(signed_in)):
    return await _keys_page(request, user, notice={"revoked": "The key was revoked; its sessions have ended."}
                            .get(notice or ""))


@router.post("/admin/keys")
async def create_key(request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    form = await form_of(request, user, max_files=0)
    user.require("admin")
    fields = {k: str(form.get(k) or "").strip() for k in ("name", "role", "expires_days")}
    body: dict[str, Any] = {"name": fields["name"], "role": fields["role"]}
    if fields["expires_days"]:
        try:
            body["expires_days"] = float(fields["expires_days"])
        except ValueError:
            return await _keys_page(request, user, error="Expires after: enter a number of days, or leave it blank.",
                                    form=fields, status=422)
    result = await user.api(request, "POST", "/v1/admin/keys", json_body=body)
    if not result.ok:
        return await _keys_page(request, user, error=result.detail, form=fields, status=result.status)
    # the plaintext key is in this one answer (no-store, like every page) and nowhere else
    return await _keys_page(request, user, created=result.json(), status=201)


@router.post("/admin/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, user: SignedIn = Depends(signed_in)):
    await form_of(request, user, max_files=0)
    user.require("admin")
    if not _KEY_ID.match(key_id):
        return await _keys_page(request, user, error=f"no API key with id {key_id[:40]!r}", status=404)
    result = await user.api(request, "DELETE", f"/v1/admin/keys/{key_id}")
    if not result.ok:
        return await _keys_page(request, user, error=result.detail, status=result.status)
    await run_in_threadpool(web_state(request).sessions.end_all_for, key_id)
    return RedirectResponse("/admin/keys?notice=revoked", status_code=303)


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    out = {k: q.get(k, "").strip()[:200] for k in ("key_id", "action", "outcome", "model", "since", "until")}
    if out["outcome"] not in OUTCOMES:
        out["outcome"] = ""
    return out


async def _audit_page(request: Request, user: SignedIn, verify: dict[str, Any] | None = None) -> HTMLResponse:
    user.require("admin")
    filters = _filters(request)
    params = dict(filters, limit=str(AUDIT_ROWS), order="newest")
    result = await user.api(request, "GET", "/v1/admin/audit", params=params)
    error, rows = None, []
    if result.ok:
        rows = result.json()["records"]
    elif result.status == 422:
        error = result.detail
    else:
        raise api_error(result)
    return render(request, "admin_audit.html", {
        "title": "Audit log", "rows": rows, "filters": filters, "outcomes": OUTCOMES, "error": error,
        "verify": verify, "limit": AUDIT_ROWS, "query": request.url.query,
    }, status=422 if error else 200)


@router.get("/admin/audit")
async def audit_page(request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    return await _audit_page(request, user)


@router.post("/admin/audit/verify")
async def verify_chain(request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    await form_of(request, user, max_files=0)
    user.require("admin")
    result = await user.api(request, "GET", "/v1/admin/audit/verify")
    if not result.ok:
        raise api_error(result)
    return await _audit_page(request, user, verify=result.json())
