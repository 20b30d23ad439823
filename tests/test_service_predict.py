# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Prediction over HTTP: the happy path, and every kind of bad input answered with a clear 4xx while the
server keeps answering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require_data
from test_service_support import FakeFileModel, service, start_service, wdbc_artifact, wdbc_rows  # noqa: F401

from medai.client import ServiceError


def _still_up(svc) -> None:
    assert svc.http.get("/health").status_code == 200
    assert svc.http.get("/v1/models", headers=svc.headers("viewer")).status_code == 200


def test_models_list_and_detail(service):
    client = service.client("viewer")
    assert client.health()["status"] == "ok"
    models = client.models()
    assert models[0]["name"] == "wdbc" and models[0]["version"] == 1
    for key in ("stage", "task", "kind", "modality", "metrics"):
        assert key in models[0]
    detail = client.model("wdbc")
    assert detail["input_kind"] == "records" and len(detail["input_schema"]) == 30
    assert detail["positive_label"] in detail["classes"] and 0 < detail["threshold"] < 1
    assert detail["model_card"] and detail["versions"][0]["version"] == 1
    with pytest.raises(ServiceError) as err:
        client.model("missing-model")
    assert err.value.status_code == 404


def test_predict_matches_the_model_in_process(service, wdbc_rows):

    from medai.registry import Registry
    from medai.serving.schemas import PredictResponse

    result = service.client("clinician").predict("wdbc", wdbc_rows)
    assert result["model"] == "wdbc" and result["version"] == 1
    # the fast path answers without FastAPI's response-model step: its body must still be the declared contract
    assert PredictResponse.model_validate(result).model_dump(exclude_none=True) == result
    model = Registry().load("wdbc")
    expected = model.scores(model.modality.inputs_from_records(wdbc_rows, model))
    for item, p in zip(result["predictions"], expected, strict=True):
        assert item["probability"] == pytest.approx(float(p), abs=1e-12)
        assert item["label"] == (model.target.positive_label if p >= model.threshold else model.target.negative_label)
        assert sum(item["probabilities"].values()) == pytest.approx(1.0)
        assert item["coverage"] == 0.9 and set(item["prediction_set"]) <= set(model.target.classes)
        assert item["uncertain"] == (len(item["prediction_set"]) != 1)
    by_version = service.client("clinician").predict("wdbc", wdbc_rows[:1], version=1, explain=True)
    contributions = by_version["predictions"][0]["contributions"]
    assert len(contributions) == 5 and {"feature", "value", "contribution"} <= set(contributions[0])


def test_null_is_a_missing_value_not_an_error(service, wdbc_rows):
    row = dict(wdbc_rows[0], **{"mean radius": None})
    assert service.client("clinician").predict("wdbc", [row])["predictions"][0]["label"]


def test_bad_inputs_are_clear_4xx_and_server_stays_up(service, wdbc_rows):
    h = dict(service.headers("clinician"))
    url = "/v1/models/wdbc/predict"
    # malformed JSON
    r = service.http.post(
        url, content=b'{"records": [{"mean radius": 1', headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "malformed JSON" in r.json()["detail"]
    # wrong types: text in a numeric column, names record index and column
    bad = [wdbc_rows[0], dict(wdbc_rows[1], **{"mean texture": "high"})]
    r = service.http.post(url, json={"records": bad}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "records", 1, "mean texture"]
    # a list where a value belongs
    r = service.http.post(url, json={"records": [dict(wdbc_rows[0], **{"mean area": [1, 2]})]}, headers=h)
    assert r.status_code == 422 and any(e["loc"][:3] == ["body", "records", 0] for e in r.json()["errors"])
    # missing field
    row = dict(wdbc_rows[0])
    del row["worst symmetry"]
    r = service.http.post(url, json={"records": [row]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "records", 0, "worst symmetry"]
    # missing records / wrong top-level shape / empty list / unknown top-level field
    for body in ({}, {"records": {}}, {"records": []}, {"records": wdbc_rows[:1], "extra": 1}, [1, 2]):
        r = service.http.post(url, json=body, headers=h)
        assert r.status_code == 422, body
        assert r.json()["errors"][0]["loc"][0] == "body"
    # unknown model and version
    assert service.http.post("/v1/models/nope/predict", json={"records": wdbc_rows[:1]}, headers=h).status_code == 404
    assert (
        service.http.post("/v1/models/wdbc/versions/9/predict", json={"records": wdbc_rows[:1]}, headers=h).status_code
        == 404
    )
    # wrong media type
    r = service.http.post(url, content=b"mean radius\n1", headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 415
    # a file upload to a tabular model
    r = service.http.post(url, files={"file": ("x.csv", b"a,b\n1,2", "text/csv")}, headers=h)
    assert r.status_code == 415
    for response in (r,):
        assert "Traceback" not in response.text
    _still_up(service)


def test_oversize_body_is_413(wdbc_artifact, wdbc_rows):
    from medai.serving.app import Settings

    http, app = start_service(Settings(max_body_bytes=2048, job_worker=False), register=wdbc_artifact)
    with http:
        _, key = app.state.medai.keys.create("c", "clinician")
        h = {"Authorization": f"Bearer {key}"}
        r = http.post("/v1/models/wdbc/predict", json={"records": wdbc_rows * 10}, headers=h)
        assert r.status_code == 413 and "limit" in r.json()["detail"]

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b" " * 1024

        r = http.post("/v1/models/wdbc/predict", content=chunks(), headers={**h, "Content-Type": "application/json"})
        assert r.status_code in (413, 400)
        assert http.post("/v1/models/wdbc/predict", json={"records": wdbc_rows[:1]}, headers=h).status_code == 200


def test_internal_errors_show_no_stack_trace(service, wdbc_rows, monkeypatch, caplog):
    import medai.serving.routers.predict as predict

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(predict, "record_predictions", boom)
    r = service.http.post(
        "/v1/models/wdbc/predict", json={"records": wdbc_rows[:1]}, headers=service.headers("clinician")
    )
    assert r.status_code == 500 and r.json() == {"detail": "internal server error"}
    assert "secret internals" not in caplog.text and "RuntimeError" in caplog.text
    from test_service_support import flush_audit

    flush_audit(service)
    last = list(service.state.audit.export())[-1]
    assert last["status_code"] == 500 and last["detail"] == {"error": "RuntimeError"}
    _still_up(service)


def test_cors_is_off_by_default(service):
    r = service.http.options(
        "/v1/models", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in r.headers


# ------------------------------------------------------------------------------------- file uploads


@pytest.fixture
def file_service(service, wdbc_artifact):
    """The service with a second model 'scan' answered by a fake file-based (imaging) family."""
    from medai.registry import Registry

    record = Registry().register(wdbc_artifact, name="scan")
    fake = FakeFileModel()
    service.state._models[(record.name, record.version)] = fake
    return service, fake


def _stored_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file()]


def test_dicom_upload_is_deidentified_before_anything_is_stored(file_service, medai_home):
    import pydicom

    from medai.privacy.dicom_deid import find_phi

    svc, fake = file_service
    source = require_data("imaging/dicom/CT_small.dcm")
    original = pydicom.dcmread(source)
    assert find_phi(original), "the test file should carry PHI"
    phi_values = [str(original.PatientName), str(original.PatientID)]
    phi_values = [v for v in phi_values if len(v) >= 4]

    result = svc.client("clinician").predict_file("scan", source)
    assert result["predictions"][0]["label"] == "normal" and result["model"] == "scan"
    seen = fake.seen[-1]
    assert seen["phi"] == [] and seen["identity_removed"] == "YES"
    assert "CT_small" not in seen["name"]  # the client's file name is not used on disk
    assert not Path(seen["path"]).exists()  # temporary upload removed after predicting
    # nothing stored anywhere under MEDAI_HOME carries the PHI values (files and the database)
    from test_service_support import flush_audit

    flush_audit(svc)
    for path in _stored_files(medai_home):
        data = path.read_bytes()
        for value in phi_values:
            assert value.encode() not in data, f"{value!r} found in {path}"
        if path.suffix == ".dcm":
            assert find_phi(pydicom.dcmread(path, force=True)) == []
    rows = list(svc.state.audit.export())
    assert rows[-1]["action"] == "predict" and rows[-1]["input_sha256"]
    assert not any(v in json.dumps(rows) for v in phi_values)


def test_non_dicom_labelled_dicom_and_empty_upload_are_4xx(file_service):
    svc, _fake = file_service
    h = svc.headers("clinician")
    url = "/v1/models/scan/predict"
    r = svc.http.post(
        url, files={"file": ("scan.dcm", b"this is not dicom at all" * 10, "application/dicom")}, headers=h
    )
    assert r.status_code == 415 and "not a readable DICOM" in r.json()["detail"]
    r = svc.http.post(url, files={"file": ("scan.dcm", b"", "application/dicom")}, headers=h)
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = svc.http.post(url, data={"note": "x"}, files={"other": ("a.txt", b"x", "text/plain")}, headers=h)
    assert r.status_code == 422 and "no file" in r.json()["detail"]
    r = svc.http.post(url, files={"file": ("notes.txt", b"hello", "text/plain")}, headers=h)
    assert r.status_code == 415
    r = svc.http.post(url, json={"records": [{}]}, headers=h)
    assert r.status_code == 415
    _still_up(svc)


def test_file_model_detail_and_image_upload(file_service):
    svc, fake = file_service
    detail = svc.client("viewer").model("scan")
    assert detail["input_kind"] == "files" and detail["classes"] == ["normal", "abnormal"]
    assert detail["file_input"]["kind"] == "image" and detail["input_schema"] is None
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (16, 16)).save(buffer, format="PNG")  # a real PNG: uploads are checked against their type
    png = buffer.getvalue()
    r = svc.http.post(
        "/v1/models/scan/predict?explain=true",
        files=[("file", ("a.png", png, "image/png")), ("file", ("b.png", png, "image/png"))],
        headers=svc.headers("clinician"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["file"] for p in body["predictions"]] == ["a.png", "b.png"]
    assert body["predictions"][0]["probability"] == 0.3 and body["predictions"][0]["explanation_png_base64"]
    assert [s["bytes"] for s in fake.seen[-2:]] == [png, png]
    r = svc.http.post(
        "/v1/models/scan/predict", files={"file": ("a.png", png, "image/png")}, headers=svc.headers("viewer")
    )
    assert r.status_code == 403
