# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Audit trail of the service and the service CLI (keys, audit verify/export), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sys

import pytest
from test_service_support import flush_audit, start_service, wdbc_artifact, wdbc_rows  # noqa: F401


def _run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from medai.cli import main

    monkeypatch.setattr(sys, "argv", ["medai", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def db_service(database_url, wdbc_artifact):
    from medai.serving.app import Settings

    http, app = start_service(
        Settings(database_url=database_url, job_worker=False, rate_limit=100_000), register=wdbc_artifact
    )
    with http:
        yield http, app


def test_audit_rows_for_predict_denied_and_admin(db_service, wdbc_rows, monkeypatch, capsys, database_url):
    http, app = db_service
    state = app.state.medai
    _, clin = state.keys.create("clin", "clinician")
    admin_record, admin = state.keys.create("adm", "admin")
    body = {"records": wdbc_rows[:2]}
    assert (
        http.post("/v1/models/wdbc/predict", json=body, headers={"Authorization": f"Bearer {clin}"}).status_code == 200
    )
    assert http.get("/v1/admin/keys", headers={"Authorization": f"Bearer {clin}"}).status_code == 403
    assert http.get("/v1/models").status_code == 401
    created = http.post(
        "/v1/admin/keys", json={"name": "new", "role": "viewer"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert created.status_code == 201
    state.audit_sink.flush(timeout=10)
    rows = list(state.audit.export())
    predict = [r for r in rows if r["action"] == "predict"]
    assert predict and predict[0]["model"] == "wdbc" and predict[0]["model_version"] == "1"
    assert predict[0]["outcome"] == "ok" and predict[0]["status_code"] == 200 and predict[0]["role"] == "clinician"
    assert predict[0]["input_sha256"] and predict[0]["client"] and predict[0]["route"] == "/v1/models/{name}/predict"
    denied = [r for r in rows if r["outcome"] == "denied"]
    assert {r["status_code"] for r in denied} == {401, 403}
    admin_rows = [r for r in rows if r["action"] == "create_key"]
    assert admin_rows and admin_rows[0]["key_id"] == admin_record.key_id
    # never the input itself: no feature value or column name from the body lands in the log (timestamps left
    # out of the search: "…:17.994Z" once matched the feature value 17.99)
    dump = json.dumps([{k: v for k, v in r.items() if k != "ts"} for r in rows])
    assert "mean radius" not in dump
    assert not [name for name, value in wdbc_rows[0].items() if isinstance(value, float) and str(value) in dump]
    assert created.json()["key"] not in dump
    # the admin API reads and verifies the same log
    page = http.get("/v1/admin/audit", headers={"Authorization": f"Bearer {admin}"}).json()["records"]
    assert len(page) >= len(rows)
    assert http.get("/v1/admin/audit/verify", headers={"Authorization": f"Bearer {admin}"}).json()["ok"] is True
    code, out, _ = _run_cli(monkeypatch, capsys, "audit", "verify")
    assert code == 0 and "intact" in out


@pytest.mark.parametrize("tamper", ["update", "delete"])
def test_audit_verify_names_the_tampered_row(db_service, wdbc_rows, monkeypatch, capsys, tamper):
    from sqlalchemy import text

    from medai.db import get_engine

    http, app = db_service
    state = app.state.medai
    _, clin = state.keys.create("clin", "clinician")
    for _ in range(4):
        http.post(
            "/v1/models/wdbc/predict",
            json={"records": wdbc_rows[:1]},
            headers={"Authorization": f"Bearer {clin}"},
        )
    state.audit_sink.flush(timeout=10)
    assert state.audit.count() >= 4
    code, _, _ = _run_cli(monkeypatch, capsys, "audit", "verify")
    assert code == 0
    with get_engine().begin() as conn:
        if tamper == "update":
            conn.execute(text("UPDATE audit_log SET outcome = 'denied' WHERE seq = 2"))
        else:
            conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    code, out, err = _run_cli(monkeypatch, capsys, "audit", "verify")
    assert code != 0, (
        [(r["seq"], r["outcome"]) for r in state.audit.export()],
        state.audit.verify(),
        out,
        err,
    )
    assert "seq 2" in err
    # the export still works and names every row's seq
    code, out, _ = _run_cli(monkeypatch, capsys, "audit", "export", "--since", "2000-01-01T00:00:00")
    assert code == 0
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert (2 in seqs) == (tamper == "update")


def test_cli_keys_create_list_revoke(database_url, monkeypatch, capsys):
    from medai.serving.keys import KeyStore

    code, out, _ = _run_cli(
        monkeypatch,
        capsys,
        "keys",
        "create",
        "--role",
        "clinician",
        "--name",
        "ward 3",
        "--expires-days",
        "30",
    )
    assert code == 0
    key = out.strip().splitlines()[-1].split()[-1]
    record = KeyStore().verify(key)
    assert record.role == "clinician" and record.name == "ward 3" and record.expires_at is not None
    code, out, _ = _run_cli(monkeypatch, capsys, "keys", "list", "--json")
    listed = json.loads(out)
    assert listed[0]["key_id"] == record.key_id and key not in out
    code, out, _ = _run_cli(monkeypatch, capsys, "keys", "revoke", record.key_id)
    assert code == 0 and record.key_id in out
    code, _, err = _run_cli(monkeypatch, capsys, "keys", "create", "--role", "root", "--name", "x")
    assert code == 2 and "role" in err
    code, _, err = _run_cli(monkeypatch, capsys, "audit", "export", "--since", "yesterday")
    assert code == 2 and "--since" in err


def test_audit_is_flushed_on_shutdown(wdbc_artifact, wdbc_rows):
    from medai.privacy.audit import AuditLog
    from medai.serving.app import Settings

    http, app = start_service(Settings(job_worker=False), register=wdbc_artifact)
    with http:
        _, clin = app.state.medai.keys.create("clin", "clinician")
        for _ in range(20):
            http.post(
                "/v1/models/wdbc/predict",
                json={"records": wdbc_rows[:1]},
                headers={"Authorization": f"Bearer {clin}"},
            )
    # after shutdown every row is in the database
    rows = [r for r in AuditLog().export() if r["action"] == "predict"]
    assert len(rows) == 20 and AuditLog().verify().ok
