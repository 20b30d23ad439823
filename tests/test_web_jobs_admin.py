# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Jobs and administration through the page at the HTTP level: upload, progress, download; keys (a new key
shown once, revocation ending sessions); the audit log with filters and the chain check."""

from __future__ import annotations

import re
import time

import pytest
from test_service_support import wdbc_artifact, wdbc_rows  # noqa: F401
from web_support import WebApp, csrf_of, make_keys, start_web


@pytest.fixture
def web(wdbc_artifact):
    http, app = start_web({"wdbc": wdbc_artifact})
    with http:
        keys, ids = make_keys(app)
        yield WebApp(app, http, keys, ids)


def _csv(rows) -> bytes:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False).encode()


def test_job_upload_progress_and_download(web, wdbc_rows):
    csrf = web.sign_in("clinician")
    page = web.http.get("/jobs").text
    assert '<option value="wdbc"' in page and "No jobs yet" in page
    r = web.http.post("/jobs", data={"csrf_token": csrf, "model": "wdbc"},
                      files={"file": ("batch.csv", _csv(wdbc_rows), "text/csv")}, follow_redirects=False)
    assert r.status_code == 303
    job_path = r.headers["location"]
    job_id = job_path.rsplit("/", 1)[1]
    page = web.http.get(job_path).text
    assert f'data-job-status="/jobs/{job_id}/status"' in page and "<progress" in page
    deadline = time.monotonic() + 60
    while (status := web.http.get(f"{job_path}/status").json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status == {"id": job_id, "status": "done", "items": 5, "error": None, "finished_at": status["finished_at"]}
    result = web.http.get(f"{job_path}/result")
    assert result.status_code == 200 and result.headers["content-type"].startswith("text/csv")
    assert "attachment" in result.headers["content-disposition"]
    assert result.text.count("\n") == 6 and "probability" in result.text.splitlines()[0]
    assert f"/jobs/{job_id}/result" in web.http.get("/jobs").text
    # another clinician does not see it
    other = web.client()
    web.state.keys.create("Other", "clinician")
    admin_view = web.client()
    web.sign_in("admin", admin_view)
    assert job_id[:8] in admin_view.get("/jobs").text
    web.sign_in("viewer", other)
    assert other.get(job_path).status_code == 403


def test_bad_job_inputs_give_messages(web):
    csrf = web.sign_in("clinician")
    r = web.http.post("/jobs", data={"csrf_token": csrf, "model": "wdbc"},
                      files={"file": ("batch.csv", b"a,b\n1,2\n", "text/csv")})
    assert r.status_code == 422 and "missing column(s)" in r.text and 'role="alert"' in r.text
    r = web.http.post("/jobs", data={"csrf_token": csrf, "model": "wdbc"})
    assert r.status_code == 422 and "Choose a CSV or a zip" in r.text
    r = web.http.post("/jobs", data={"csrf_token": csrf, "model": "nope"},
                      files={"file": ("batch.csv", b"a\n1\n", "text/csv")})
    assert r.status_code == 404 and "nope" in r.text
    assert web.http.get("/jobs/not-a-job").status_code == 404


def test_admin_creates_a_key_shown_once_and_revokes_it(web):
    csrf = web.sign_in("admin")
    r = web.http.post("/admin/keys", data={"csrf_token": csrf, "name": "Ward 5 tablet", "role": "clinician",
                                           "expires_days": "30"})
    assert r.status_code == 201
    key = re.search(r'id="new-key">(medai_[0-9a-f]{12}_[A-Za-z0-9_-]{43})<', r.text).group(1)
    assert r.headers["cache-control"] == "no-store"
    page = web.http.get("/admin/keys").text
    assert "Ward 5 tablet" in page and key not in page  # never shown again
    # the new key signs in
    tablet = web.client()
    form = tablet.get("/sign-in").text
    assert tablet.post("/sign-in", data={"csrf_token": csrf_of(form), "api_key": key},
                       follow_redirects=False).status_code == 303
    assert tablet.get("/models", follow_redirects=False).status_code == 200
    key_id = key.split("_")[1]
    r = web.http.post(f"/admin/keys/{key_id}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 200 and "was revoked" in r.text
    assert tablet.get("/models", follow_redirects=False).status_code == 303  # its session ended
    r = web.http.post("/admin/keys", data={"csrf_token": csrf, "name": "<b>x</b>", "role": "clinician"})
    assert r.status_code == 422 and "not allowed" in r.text
    rows = [r for r in web.audit() if r["action"] in ("create_key", "revoke_key")]
    assert [(r["action"], r["status_code"], r["detail"].get("via")) for r in rows] == [
        ("create_key", 201, "web"), ("revoke_key", 200, "web"), ("create_key", 422, "web")]
    assert key not in str(web.audit())


def test_non_admins_are_refused_the_admin_pages(web):
    for role in ("viewer", "clinician"):
        http = web.client()
        csrf = web.sign_in(role, http)
        assert http.get("/admin/keys").status_code == 403
        assert http.get("/admin/audit").status_code == 403
        assert http.post("/admin/keys", data={"csrf_token": csrf, "name": "x", "role": "admin"}).status_code == 403
        assert http.post("/admin/audit/verify", data={"csrf_token": csrf}).status_code == 403
    assert len(web.state.keys.list()) == 3


def test_audit_log_filters_and_verify_chain(web, wdbc_rows):
    csrf = web.sign_in("admin")
    web.http.get("/models/wdbc")
    page = web.http.get("/admin/audit").text
    assert "web_sign_in" in page and "get_model" in page
    filtered = web.http.get("/admin/audit", params={"action": "get_model"}).text
    assert "get_model" in filtered and "<td>web_sign_in</td>" not in filtered
    mine = web.http.get("/admin/audit", params={"key_id": web.key_ids["viewer"]}).text
    assert "No rows match" in mine
    denied = web.http.get("/admin/audit", params={"outcome": "denied"}).text
    assert "No rows match" in denied
    r = web.http.post("/admin/audit/verify", data={"csrf_token": csrf})
    assert r.status_code == 200 and "The chain is intact" in r.text
    # tamper with a row: the button says where the chain breaks
    from sqlalchemy import update

    from medai.privacy.audit import AuditEntry

    with web.state.audit._engine.begin() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(action="tampered"))
    r = web.http.post("/admin/audit/verify", data={"csrf_token": csrf})
    assert "The chain is broken at row 2" in r.text and 'role="alert"' in r.text
    assert web.http.get("/admin/audit", params={"since": "not a date"}).status_code == 422
