# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""The web page at the HTTP level: sign-in and sessions, cookie flags, CSRF, security headers, refusals,
the models table, card and report, promote/retire — all through the API's roles and audit trail."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from test_service_support import wdbc_artifact, wdbc_rows  # noqa: F401
from web_support import ROLES, WebApp, csrf_of, make_keys, start_web

from medai.serving.app import Settings, iter_routes
from medai.web.security import is_page_path


@pytest.fixture
def web(wdbc_artifact):
    http, app = start_web({"wdbc": wdbc_artifact})
    with http:
        keys, ids = make_keys(app)
        yield WebApp(app, http, keys, ids)


def _page_routes(app) -> list[tuple[str, str]]:
    out = []
    for path, methods, _route in iter_routes(app):
        if not is_page_path(path) or not methods:
            continue
        for method in sorted(methods - {"HEAD"}):
            out.append((method, path))
    return out


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0) == "{version}" else "wdbc", path)


# ------------------------------------------------------------------------------------ sessions, cookies


def test_sign_in_exchanges_the_key_for_a_session_cookie(web):
    page = web.http.get("/sign-in")
    assert page.status_code == 200 and 'type="password"' in page.text
    pre = page.cookies.get("medai_signin_csrf") or web.http.cookies.get("medai_signin_csrf")
    assert pre
    r = web.http.post("/sign-in", data={"csrf_token": csrf_of(page.text), "api_key": web.keys["clinician"],
                                         "next": "/models/wdbc"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/models/wdbc"
    cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith("medai_session=")][0]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= flags
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in flags  # plain HTTP (tests): Secure comes with TLS, see the next test
    token = cookie.split(";")[0].split("=", 1)[1]
    assert web.keys["clinician"] not in r.text and web.keys["clinician"] not in cookie
    assert web.keys["clinician"].split("_", 2)[2] not in r.headers.get("location", "")
    # the server keeps a hash of the session token, never the token or the key
    from sqlalchemy import select

    from medai.db import session_factory
    from medai.web.sessions import WebSessionRow

    with session_factory()() as s:
        rows = s.scalars(select(WebSessionRow)).all()
    assert len(rows) == 1 and rows[0].token_sha256 != token and rows[0].key_id == web.key_ids["clinician"]
    page = web.http.get("/models/wdbc")
    assert page.status_code == 200 and "Test clinician" in page.text
    assert web.keys["clinician"] not in page.text


def test_cookie_is_secure_and_host_prefixed_under_tls(wdbc_artifact):
    http, app = start_web({"wdbc": wdbc_artifact}, Settings(job_worker=False, web_secure_cookies=True))
    with http:
        keys, _ = make_keys(app)
        page = http.get("/sign-in")
        assert "secure" in page.headers["set-cookie"].lower()
        r = http.post("/sign-in", data={"csrf_token": csrf_of(page.text), "api_key": keys["viewer"]},
                      headers={"cookie": f"medai_signin_csrf={csrf_of(page.text)}"}, follow_redirects=False)
        assert r.status_code == 303
        cookie = [c for c in r.headers.get_list("set-cookie") if "medai_session" in c][0]
        assert cookie.startswith("__Host-medai_session=")
        assert "; secure" in cookie.lower() and "httponly" in cookie.lower() and "path=/" in cookie.lower()
        assert "strict-transport-security" in r.headers


def test_wrong_key_is_refused_on_the_page_and_audited(web):
    page = web.http.get("/sign-in")
    bad = "medai_000000000000_" + "A" * 43
    r = web.http.post("/sign-in", data={"csrf_token": csrf_of(page.text), "api_key": bad})
    assert r.status_code == 401 and "Not signed in" in r.text and 'aria-invalid="true"' in r.text
    assert bad not in r.text
    assert web.http.get("/models", follow_redirects=False).status_code == 303
    rows = [row for row in web.audit() if row["action"] == "web_sign_in"]
    assert rows[-1]["outcome"] == "denied" and rows[-1]["detail"]["reason"] == "unknown"
    assert bad not in str(web.audit())


def test_sign_out_ends_the_session_on_the_server(web):
    csrf = web.sign_in("viewer")
    cookie = web.http.cookies.get("medai_session")
    r = web.http.post("/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")
    assert web.state.keys is not None and web.app.state.medai_web.sessions.count() == 0
    # the old cookie, replayed, opens nothing
    other = web.client()
    other.cookies.set("medai_session", cookie)
    assert other.get("/models", follow_redirects=False).status_code == 303
    assert [r["action"] for r in web.audit() if r["action"].startswith("web_sign")] == ["web_sign_in", "web_sign_out"]


def _age_sessions(**delta) -> None:
    """Move every session's times back (as if that much time had passed), instead of sleeping."""
    from sqlalchemy import select

    from medai.db import session_factory
    from medai.web.sessions import WebSessionRow

    with session_factory().begin() as s:
        for row in s.scalars(select(WebSessionRow)).all():
            row.last_seen_at -= timedelta(**delta)
            row.expires_at -= timedelta(**delta)


def test_idle_and_absolute_expiry(web):
    sessions = web.app.state.medai_web.sessions
    assert sessions.idle == timedelta(minutes=30) and sessions.absolute == timedelta(hours=12)
    web.sign_in("viewer")
    _age_sessions(minutes=29)
    assert web.http.get("/models", follow_redirects=False).status_code == 200  # 29 min idle: still on
    _age_sessions(minutes=31)
    r = web.http.get("/models", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/models"
    assert sessions.count() == 0  # the expired session was deleted
    # absolute expiry: in use all along (never idle), but 12 hours after sign-in it ends
    web.sign_in("viewer")
    for _ in range(3):
        from sqlalchemy import select

        from medai.db import session_factory
        from medai.web.sessions import WebSessionRow

        with session_factory().begin() as s:
            row = s.scalars(select(WebSessionRow)).one()
            row.expires_at -= timedelta(hours=4, minutes=1)
        assert web.http.get("/models", follow_redirects=False).status_code == (200 if _ < 2 else 303)


def test_a_revoked_key_ends_its_sessions(web):
    web.sign_in("clinician")
    assert web.http.get("/models", follow_redirects=False).status_code == 200
    web.state.keys.revoke(web.key_ids["clinician"])
    assert web.http.get("/models", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_site(web):
    page = web.http.get("/sign-in?next=//evil.example/x")
    assert 'value="/models"' in page.text
    r = web.http.post("/sign-in", data={"csrf_token": csrf_of(page.text), "api_key": web.keys["viewer"],
                                         "next": "https://evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/models"


# ------------------------------------------------------------------------------------ refusals, CSRF


def test_signed_out_is_refused_everything(web):
    routes = _page_routes(web.app)
    assert ("GET", "/models") in routes and ("POST", "/sign-out") in routes
    fresh = web.client()
    for method, path in routes:
        if path in ("/sign-in", "/"):
            continue
        r = fresh.request(method, _concrete(path), follow_redirects=False)
        if method == "GET":
            assert r.status_code == 303 and r.headers["location"].startswith("/sign-in?next="), (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)
            assert "not signed in" in r.text.lower()
    refused = [r for r in web.audit() if r["action"] == "web_not_signed_in"]
    assert refused and all(r["outcome"] == "denied" and r["status_code"] == 401 for r in refused)


def test_posts_without_the_csrf_token_are_refused(web):
    csrf = web.sign_in("admin")
    for path, data in [
        ("/sign-out", {}),
        ("/sign-out", {"csrf_token": "wrong"}),
        ("/models/wdbc/versions/1/stage", {"stage": "production"}),
    ]:
        r = web.http.post(path, data=data, follow_redirects=False)
        assert r.status_code == 403 and "security token" in r.text, (path, data)
    assert web.state.registry.get("wdbc", 1).stage == "none"
    # a matching token from another site is refused too
    r = web.http.post("/models/wdbc/versions/1/stage", data={"stage": "production", "csrf_token": csrf},
                      headers={"origin": "https://evil.example"}, follow_redirects=False)
    assert r.status_code == 403 and web.state.registry.get("wdbc", 1).stage == "none"
    # sign-in itself needs its token
    assert web.client().post("/sign-in", data={"api_key": web.keys["admin"]}).status_code == 403
    assert sum(r["action"] == "web_csrf" for r in web.audit()) == 5


# ------------------------------------------------------------------------------------ headers, assets


CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def test_security_headers_on_every_page(web):
    web.sign_in("admin")
    for path in ("/sign-in", "/models", "/models/wdbc", "/static/medai.css", "/models/nope"):
        r = web.http.get(path)
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        if not path.startswith("/static/"):
            assert r.headers["cache-control"] == "no-store"
    report = web.http.get("/models/wdbc/versions/1/report")
    assert report.status_code == 200 and "<html" in report.text.lower()
    assert "sandbox" in report.headers["content-security-policy"]
    assert "script" not in report.headers["content-security-policy"]
    assert web.http.get("/models/nope").status_code == 404


def test_pages_reference_no_outside_host_and_no_inline_script(web):
    web.sign_in("admin")
    for path in ("/sign-in", "/models", "/models/wdbc"):
        html = web.http.get(path).text
        for attr in re.findall(r'(?:src|href|action)="([^"]*)"', html):
            assert attr.startswith(("/", "#")), (path, attr)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert " style=" not in html and "on" + "click=" not in html


# ------------------------------------------------------------------------------------ models and roles


def test_models_table_and_card_for_each_role(web):
    for role in ROLES:
        http = web.client()
        web.sign_in(role, http)
        table = http.get("/models").text
        assert "wdbc" in table and "auroc 0.9" in table
        page = http.get("/models/wdbc").text
        assert "Model card" in page and "<table>" in page  # the card's Markdown table rendered
        assert ("Predict with this model" in page) == (role != "viewer")
        assert ("Set stage" in page) == (role == "admin")
        assert 'id="monitoring"' in page


def test_model_page_shows_what_monitoring_recorded(web, wdbc_rows):
    http = web.client()
    web.sign_in("viewer", http)
    assert "No monitoring results" in http.get("/models/wdbc").text
    r = web.http.post("/v1/models/wdbc/predict", json={"records": wdbc_rows},
                      headers={"Authorization": f"Bearer {web.keys['clinician']}"})
    assert r.status_code == 200, r.text
    web.state.recorder.flush()
    page = http.get("/models/wdbc").text
    assert "5 record(s) served since training, 0 with a known outcome" in page
    assert "No monitoring results" not in page


def test_promote_and_retire_go_through_the_admin_api(web):
    csrf = web.sign_in("clinician")
    r = web.http.post("/models/wdbc/versions/1/stage", data={"stage": "production", "csrf_token": csrf})
    assert r.status_code == 403 and "not allowed" in r.text
    assert web.state.registry.get("wdbc", 1).stage == "none"
    admin = web.client()
    csrf = web.sign_in("admin", admin)
    r = admin.post("/models/wdbc/versions/1/stage", data={"stage": "production", "csrf_token": csrf})
    assert r.status_code == 200 and "The stage was changed" in r.text
    assert web.state.registry.get("wdbc", 1).stage == "production"
    r = admin.post("/models/wdbc/versions/1/stage", data={"stage": "bogus", "csrf_token": csrf})
    assert r.status_code == 422 and "stage" in r.text
    rows = [r for r in web.audit() if r["action"] == "set_stage"]
    assert [(r["role"], r["status_code"], r["detail"]["via"]) for r in rows] == [
        ("clinician", 403, "web"), ("admin", 200, "web"), ("admin", 422, "web")]
