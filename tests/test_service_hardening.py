# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Regression tests for the attack findings of issue 9 on the service: audit rows that were dropped or
written after the answer, parsing before authentication, failed authentications without a limit, and a
5xx where a 4xx belongs."""

from __future__ import annotations

import pytest
from test_service_support import ROLES, service, start_service, wdbc_artifact, wdbc_rows  # noqa: F401

from medai.client import ServiceError
from medai.errors import MedAIError


def _rows(svc):
    from medai.privacy.audit import AuditLog

    return list(AuditLog(svc.state.settings.database_url).export())


# ------------------------------------------------------------------------------------------ finding 2


def test_long_path_parameters_keep_their_audit_row(service):
    long_job, long_key = "a" * 5000, "b" * 5000
    assert service.http.get(f"/v1/jobs/{long_job}", headers=service.headers("clinician")).status_code == 404
    assert service.http.delete(f"/v1/admin/keys/{long_key}", headers=service.headers("admin")).status_code == 404
    rows = _rows(service)
    by_action = {r["action"]: r for r in rows}
    assert by_action["get_job"]["status_code"] == 404 and by_action["get_job"]["detail"]["truncated"] is True
    assert by_action["revoke_key"]["status_code"] == 404
    assert by_action["revoke_key"]["detail"]["revoked_key_id"]["bytes"] == 5002  # JSON string of 5,000 chars
    from medai.privacy.audit import AuditLog

    assert AuditLog().verify().ok


def test_the_row_is_committed_before_the_answer(service, wdbc_rows):
    """No flush, no wait: the moment the client has its answer, the row is in the database (the 20 ms batching
    window lost 0.36% of rows to a SIGKILL under load)."""
    from medai.privacy.audit import AuditLog

    reader = AuditLog()
    for i in range(5):
        before = reader.count()
        r = service.http.post(
            "/v1/models/wdbc/predict", json={"records": wdbc_rows[:1]}, headers=service.headers("clinician")
        )
        assert r.status_code == 200
        assert reader.count() == before + 1, f"request {i} was answered before its audit row was committed"
    denied = service.http.get("/v1/models")  # a denial too
    assert denied.status_code == 401 and reader.count() == before + 2


def test_no_answer_without_its_audit_row(service, wdbc_rows):
    writer = service.state.audit_writer
    writer.max_retries, writer.retry_delay_s = 0, 0.0

    def broken(events):
        raise RuntimeError("database is gone")

    writer.log._append = broken  # the instance attribute shadows the method for this writer only
    r = service.http.post(
        "/v1/models/wdbc/predict", json={"records": wdbc_rows[:1]}, headers=service.headers("clinician")
    )
    assert r.status_code == 503 and "probability" not in r.text
    assert r.json()["detail"].startswith("a service the API depends on is unavailable")
    assert service.http.get("/health").status_code == 200
    del writer.log._append
    writer._error = None  # let the fixture shut down cleanly


# ------------------------------------------------------------------------------------------ finding 8


def test_authentication_comes_before_body_parsing(service):
    bad = b'{"name": "x", "role": '
    h = {"Content-Type": "application/json"}
    r = service.http.post("/v1/admin/keys", content=bad, headers=h)
    assert r.status_code == 401  # was 422: the body was parsed before the key was checked
    r = service.http.post("/v1/admin/keys", content=bad, headers={**h, **service.headers("viewer")})
    assert r.status_code == 403
    r = service.http.post("/v1/admin/keys", content=bad, headers={**h, **service.headers("admin")})
    assert r.status_code == 422 and "malformed JSON" in r.json()["detail"]
    rows = [r for r in _rows(service) if r["route"] == "/v1/admin/keys"]
    assert [r["status_code"] for r in rows] == [401, 403, 422]
    assert all(r["action"] == "create_key" for r in rows)


def test_unknown_paths_under_v1_need_a_key(service):
    assert service.http.get("/v1/no-such-thing").status_code == 401
    assert service.http.get("/v1/no-such-thing", headers=service.headers("viewer")).status_code == 404
    assert service.http.put("/v1/models", headers=service.headers("viewer")).status_code == 405
    routes = [r["route"] for r in _rows(service)]
    assert "/v1/no-such-thing" not in routes and "(no such route)" in routes


def test_failed_authentications_are_limited_per_address(wdbc_artifact, wdbc_rows):
    from medai.serving.app import Settings

    http, app = start_service(Settings(job_worker=False, rate_limit=100_000, auth_fail_limit=5), wdbc_artifact)
    with http:
        state = app.state.medai
        _, good = state.keys.create("good", "clinician")
        state.keys.verify(good)
        checks_before = state.keys.cold_checks
        wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        codes = [http.get("/v1/models", headers={"Authorization": f"Bearer {wrong}"}).status_code for _ in range(40)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        assert state.keys.cold_checks - checks_before == 5  # no scrypt for the refused ones
        blocked = http.get("/v1/models", headers={"Authorization": f"Bearer {good}"})
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
        assert "failed authentications" in blocked.json()["detail"]
        rows = list(state.audit.export())
        assert len([r for r in rows if r["status_code"] == 401]) == 5
        summaries = [r for r in rows if r["status_code"] == 429]
        assert 1 <= len(summaries) <= 3  # one row a second, counting the others
        assert sum(r["detail"]["suppressed_since_last_row"] for r in summaries) <= 36
        state.auth_failures.reset("testclient")
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {good}"}).status_code == 200


# ------------------------------------------------------------------------------------------ finding 7


def test_redis_is_checked_at_start_and_its_loss_is_503(wdbc_artifact, wdbc_rows):
    from medai.serving.app import Settings
    from medai.serving.ratelimit import RateLimiterUnavailable

    http, _app = start_service(Settings(job_worker=False, redis_url="redis://127.0.0.1:1/0"), wdbc_artifact)
    with pytest.raises(RateLimiterUnavailable):
        with http:
            pass
    http, app = start_service(Settings(job_worker=False, rate_limit=100_000))
    with http:
        _, key = app.state.medai.keys.create("c", "clinician")

        def down(key_id):
            raise RateLimiterUnavailable("rate limiter: Redis unreachable (connection refused 10.1.2.3:6379)")

        app.state.medai.limiter.hit = down
        r = http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 503 and r.headers["Retry-After"] and "10.1.2.3" not in r.text


def test_expires_days_out_of_range_is_422(service):
    admin = service.headers("admin")
    for days in (1e9, 1e308, 36_501):
        body = {"name": "x", "role": "viewer", "expires_days": days}
        r = service.http.post("/v1/admin/keys", json=body, headers=admin)
        assert r.status_code == 422, (days, r.text)
    r = service.http.post("/v1/admin/keys", json={"name": "a\u202eb", "role": "viewer"}, headers=admin)
    assert r.status_code == 422 and "U+202E" in r.json()["detail"]


def _lying_zip(actual: int = 4_000_000, claimed: int = 1000) -> bytes:
    """A zip whose headers understate its one member's inflated size (``claimed`` of ``actual`` bytes)."""
    import io
    import struct
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("scan.png", b"\0" * actual)
    data = bytearray(buffer.getvalue())
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, claimed)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, claimed)
    return bytes(data)


def test_inputs_that_used_to_be_5xx_are_4xx(service, wdbc_rows):
    """Issue 9, finding 7: each of these was answered 500."""
    import json

    from test_service_support import FakeFileModel

    from medai.registry import Registry

    h = service.headers("admin")
    hj = {**h, "Content-Type": "application/json"}
    row = json.dumps(wdbc_rows[0])
    huge_int = '{"records": [' + row[:-1] + ', "mean radius": 1' + "0" * 400 + "}]}"
    assert service.http.post("/v1/models/wdbc/predict", content=huge_int, headers=hj).status_code == 422
    extreme = {k: 1.79e308 * (-1) ** i for i, k in enumerate(wdbc_rows[0])}
    r = service.http.post("/v1/models/wdbc/predict", json={"records": [wdbc_rows[0], extreme]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "records", 1]
    big = 2**64
    assert service.http.post(f"/v1/models/wdbc/versions/{big}/predict", json={"records": wdbc_rows[:1]},
                             headers=h).status_code == 404
    assert service.http.put(f"/v1/admin/models/wdbc/versions/{big}/stage", json={"stage": "staging"},
                            headers=h).status_code == 404
    assert service.http.post("/v1/jobs", data={"model": "wdbc", "version": str(big)},
                             files={"file": ("a.csv", b"a\n1\n", "text/csv")}, headers=h).status_code == 404
    fhir = "/v1/fhir/RiskAssessment/$predict?model=wdbc"
    assert service.http.post(f"{fhir}&version={big}", json={"resourceType": "Bundle"}, headers=h).status_code == 404
    columns = list(wdbc_rows[0])
    service.client("admin").set_loinc_mapping("wdbc", {f"{i}-1": c for i, c in enumerate(columns)})
    hf = {**h, "Content-Type": "application/fhir+json"}
    deep = '{"resourceType": "Bundle", "type": "collection", "entry": ' + "[" * 5000 + "]" * 5000 + "}"
    r = service.http.post(fhir, content=deep, headers=hf)
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"]
    obs = (
        '{"resource": {"resourceType": "Observation", "status": "final", "code": {"coding": '
        '[{"system": "http://loinc.org", "code": "0-1"}]}, "valueQuantity": {"value": %s}}}'
    )
    for value in ("9" * 5000, "9" * 4000, "1e400"):
        body = '{"resourceType": "Bundle", "type": "collection", "entry": [' + obs % value + "]}"
        r = service.http.post(fhir, content=body, headers=hf)
        assert r.status_code == 422 and "number" in r.json()["detail"], r.text
    for where in ("", "   ", "/etc", "/proc/self"):
        r = service.http.post("/v1/admin/models", json={"artifact_dir": where}, headers=h)
        assert r.status_code in (404, 422) and "integrity" not in r.text, (where, r.text)
    # a zip whose headers understate the inflated size
    record = Registry().register(service.state.registry.get("wdbc").artifact_path, name="scan")
    service.state._models[(record.name, record.version)] = FakeFileModel()
    r = service.http.post("/v1/jobs", data={"model": "scan"},
                          files={"file": ("scans.zip", _lying_zip(), "application/zip")}, headers=h)
    assert r.status_code == 422 and "zip member 1" in r.json()["detail"], r.text
    assert not any((service.state.jobs.root).iterdir())  # nothing left behind
    assert service.http.get("/health").status_code == 200


# ------------------------------------------------------------------------------------------ finding 6

PLANTED = ("Jane Q. Plantedname", "MRN-7731-PLANTED", "1931-02-03-PLANTED")


def _everything_stored(home) -> bytes:
    """Every byte under MEDAI_HOME (SQLite database and its WAL included)."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def test_jobs_keep_no_phi(service, wdbc_rows, medai_home, tmp_path):
    import pandas as pd

    client = service.client("clinician")
    frame = pd.DataFrame(wdbc_rows)
    frame.insert(0, "patient_name", PLANTED[0])
    frame.insert(1, "mrn", PLANTED[1])
    frame["birth_date"] = PLANTED[2]
    good = tmp_path / "good.csv"
    frame.to_csv(good, index=False)
    bad_frame = frame.astype({"mean texture": object})
    bad_frame.loc[2, "mean texture"] = PLANTED[0]  # a name typed into a numeric column
    bad = tmp_path / "bad.csv"
    bad_frame.to_csv(bad, index=False)

    done = client.wait_job(client.submit_job("wdbc", good)["id"], timeout=60)
    with pytest.raises(ServiceError) as err:  # every cell is checked when the job is submitted
        client.submit_job("wdbc", bad)
    assert err.value.status_code == 422
    assert "'mean texture'" in err.value.detail and "row 3" in err.value.detail
    assert not any(p in err.value.detail for p in PLANTED)
    # an error raised while a job runs is stored as one line without server paths
    from medai.serving.jobs import public_error

    stored = public_error(MedAIError(f"{medai_home}/jobs/abc/input.csv: column 'x' holds text\nsecond line"))
    assert str(medai_home) not in stored and "input.csv" in stored and "\n" not in stored
    assert done["status"] == "done"
    # inputs are gone once a job ends; the result stays
    folder = service.state.jobs.folder(done["id"])
    assert not (folder / "input.csv").exists() and not (folder / "input").exists()
    assert client.job_result(done["id"]).count("\n") == 6
    # nothing stored anywhere under MEDAI_HOME holds the planted PHI (database, WAL, job folders, uploads)
    stored = _everything_stored(medai_home)
    assert stored and not any(p.encode() in stored for p in PLANTED)


def test_job_results_are_deleted_after_retention(service, wdbc_rows, tmp_path):
    from datetime import UTC, datetime, timedelta

    import pandas as pd

    client = service.client("clinician")
    path = tmp_path / "batch.csv"
    pd.DataFrame(wdbc_rows).to_csv(path, index=False)
    job = client.wait_job(client.submit_job("wdbc", path)["id"], timeout=60)
    store = service.state.jobs
    assert store.purge() == 0 and client.job(job["id"])["result_url"]
    assert store.purge(now=datetime.now(UTC) + timedelta(days=8)) == 1
    assert not store.folder(job["id"]).exists()
    info = client.job(job["id"])
    assert info["status"] == "done" and info["result_url"] is None
    r = service.http.get(f"/v1/jobs/{job['id']}/result", headers=service.headers("clinician"))
    assert r.status_code == 404 and "no longer kept" in r.json()["detail"]


def test_jobs_have_a_time_budget(wdbc_artifact, wdbc_rows, tmp_path):
    import pandas as pd

    from medai.client import Client
    from medai.serving.app import Settings

    http, app = start_service(Settings(job_poll_s=0.05, rate_limit=100_000, job_timeout_s=0.0), wdbc_artifact)
    with http:
        _, key = app.state.medai.keys.create("c", "clinician")
        path = tmp_path / "batch.csv"
        pd.DataFrame(wdbc_rows).to_csv(path, index=False)
        client = Client(key=key, http=http)
        info = client.wait_job(client.submit_job("wdbc", path)["id"], timeout=60)
        assert info["status"] == "failed" and "time limit" in info["error"]


def test_openapi_documents_the_error_shape_the_server_sends(service):
    from medai.serving.schemas import ErrorResponse

    doc = service.http.get("/v1/openapi.json", headers=service.headers("viewer")).json()
    assert "HTTPValidationError" not in str(doc)
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path)
    r = service.http.post("/v1/admin/keys", json={"name": 5}, headers=service.headers("admin"))
    assert r.status_code == 422 and ErrorResponse.model_validate(r.json()).errors
