# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Batch jobs: CSV for tabular models, zips for file-based models; state in the database, so jobs survive a
restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from conftest import require_data
from test_service_support import FakeFileModel, service, start_service, wdbc_artifact, wdbc_rows  # noqa: F401

from medai.client import Client, ServiceError


def _csv(rows, tmp_path):
    import pandas as pd

    path = tmp_path / "batch.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_csv_job_runs_and_returns_a_csv(service, wdbc_rows, tmp_path):
    client = service.client("clinician")
    info = client.submit_job("wdbc", _csv(wdbc_rows, tmp_path))
    assert info["status"] == "queued" and info["items"] == 5
    done = client.wait_job(info["id"], timeout=30)
    assert done["status"] == "done", done
    text = client.job_result(info["id"])
    lines = text.strip().splitlines()
    assert lines[0].startswith("probability,label") and len(lines) == 6
    direct = client.predict("wdbc", wdbc_rows)["predictions"]
    first = float(lines[1].split(",")[0])
    assert first == pytest.approx(direct[0]["probability"], rel=1e-9, abs=1e-15)
    # another clinician cannot see it; an admin can
    _, other = service.state.keys.create("other", "clinician")
    with pytest.raises(ServiceError) as err:
        Client(key=other, http=service.http).job(info["id"])
    assert err.value.status_code == 404
    assert service.client("admin").job(info["id"])["status"] == "done"


def test_bad_job_inputs(service, wdbc_rows, tmp_path):
    client = service.client("clinician")
    h = service.headers("clinician")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ServiceError) as err:
        client.submit_job("wdbc", bad)
    assert err.value.status_code == 422 and "missing column" in err.value.detail
    with pytest.raises(ServiceError) as err:
        client.submit_job("unknown-model", _csv(wdbc_rows, tmp_path))
    assert err.value.status_code == 404
    r = service.http.post("/v1/jobs", data={"model": "wdbc"}, files={"file": ("e.csv", b"", "text/csv")}, headers=h)
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = service.http.post("/v1/jobs", json={"model": "wdbc"}, headers=h)
    assert r.status_code == 415
    r = service.http.post("/v1/jobs", files={"file": ("a.csv", b"x", "text/csv")}, headers=h)
    assert r.status_code == 422 and "model" in r.json()["detail"]
    assert service.http.get("/v1/jobs/doesnotexist", headers=h).status_code == 404
    assert service.http.get("/health").status_code == 200


def test_job_survives_a_restart(database_url, wdbc_artifact, wdbc_rows, tmp_path):
    """Queued by a server without a worker (then stopped), and one left 'running' by a crashed server:
    a new server picks both up."""
    from medai.serving.app import Settings
    from medai.serving.jobs import JobRow

    settings = Settings(database_url=database_url, job_worker=False)
    http, app = start_service(settings, register=wdbc_artifact)
    with http:
        _, key = app.state.medai.keys.create("c", "clinician")
        client = Client(key=key, http=http)
        first = client.submit_job("wdbc", _csv(wdbc_rows, tmp_path))
        second = client.submit_job("wdbc", _csv(wdbc_rows[:2], tmp_path))
        jobs = app.state.medai.jobs
        # simulate a crash in the middle of the second job: claimed, lease already run out
        with jobs._sessions.begin() as session:
            row = session.get(JobRow, second["id"])
            row.status, row.attempts = "running", 1
            row.started_at = datetime.now(UTC) - timedelta(minutes=5)
            row.lease_until = datetime.now(UTC) - timedelta(minutes=4)
        assert client.job(first["id"])["status"] == "queued"
    http2, app2 = start_service(Settings(database_url=database_url, job_poll_s=0.05))
    with http2:
        client2 = Client(key=key, http=http2)
        for job in (first, second):
            info = client2.wait_job(job["id"], timeout=30)
            assert info["status"] == "done", info
        assert len(client2.job_result(second["id"]).strip().splitlines()) == 3


def test_zip_job_of_dicom_is_deidentified_on_arrival(service, wdbc_artifact, medai_home):
    import pydicom

    from medai.registry import Registry

    record = Registry().register(wdbc_artifact, name="scan")
    fake = FakeFileModel()
    service.state._models[(record.name, record.version)] = fake
    sources = [require_data("imaging/dicom/CT_small.dcm"), require_data("imaging/dicom/MR_small.dcm")]
    names = [str(pydicom.dcmread(p).PatientName) for p in sources]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for p in sources:
            archive.write(p, arcname=f"patient {names[0]}/{p.name}")
    h = service.headers("clinician")
    r = service.http.post(
        "/v1/jobs",
        data={"model": "scan"},
        files={"file": ("scans.zip", buffer.getvalue(), "application/zip")},
        headers=h,
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    info = service.client("clinician").wait_job(job_id, timeout=30)
    assert info["status"] == "done"
    # What the model was handed is what was stored on arrival (the worker deletes inputs when it ends,
    # so the files are checked through the model's record of them rather than on disk).
    assert len(fake.seen) == 2
    for item in fake.seen:
        assert item["phi"] == [] and item["identity_removed"] == "YES"
        assert not any(n.encode() in item["bytes"] for n in names if len(n) > 3)
        assert names[0] not in item["name"]
    assert not (medai_home / "jobs" / job_id / "input").exists()
    result = service.client("clinician").job_result(job_id)
    assert "label" in result and not any(n in result for n in names if len(n) > 3)
