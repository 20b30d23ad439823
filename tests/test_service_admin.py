# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Admin routes: register, promote and retire versions; manage keys over HTTP."""

from __future__ import annotations

import pytest
from test_service_support import service, wdbc_artifact, wdbc_rows  # noqa: F401

from medai.client import Client, ServiceError


def test_register_promote_retire(service, wdbc_artifact, wdbc_rows):
    admin, clinician = service.client("admin"), service.client("clinician")
    v2 = admin.register_model(wdbc_artifact, name="wdbc")
    assert v2["version"] == 2 and "artifact_path" not in v2
    assert clinician.predict("wdbc", wdbc_rows[:1])["version"] == 2  # newest when none is in production
    assert admin.set_stage("wdbc", 1, "production")["stage"] == "production"
    assert clinician.predict("wdbc", wdbc_rows[:1])["version"] == 1
    admin.set_stage("wdbc", 2, "retired")
    with pytest.raises(ServiceError) as err:
        clinician.predict("wdbc", wdbc_rows[:1], version=2)
    assert err.value.status_code == 404 and "retired" in err.value.detail
    with pytest.raises(ServiceError) as err:
        admin.set_stage("wdbc", 7, "production")
    assert err.value.status_code == 404
    r = service.http.put(
        "/v1/admin/models/wdbc/versions/1/stage", json={"stage": "gold"}, headers=service.headers("admin")
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "stage"
    with pytest.raises(ServiceError) as err:
        admin.register_model("/nonexistent/artifact")
    assert 400 <= err.value.status_code < 500


def test_keys_over_http(service):
    admin = service.client("admin")
    created = admin.create_key("api user", "viewer", expires_days=1)
    assert created["key"].startswith("medai_") and created["role"] == "viewer"
    listed = admin.keys()
    assert created["key_id"] in {k["key_id"] for k in listed}
    assert all("key" not in k for k in listed)
    new = Client(key=created["key"], http=service.http)
    assert new.models()
    admin.revoke_key(created["key_id"])
    with pytest.raises(ServiceError) as err:
        new.models()
    assert err.value.status_code == 401
    with pytest.raises(ServiceError) as err:
        admin.create_key("x", "superuser")
    assert err.value.status_code == 422
    assert admin.audit_verify()["ok"] is True
    actions = [r["action"] for r in admin.audit()]
    assert "create_key" in actions and "revoke_key" in actions
