# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""The real imaging family through the service: a DICOM and a PNG in, probabilities and Grad-CAM out, with
the DICOM de-identified before anything is stored."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import require_data
from test_service_support import imaging_artifact  # noqa: F401

pytestmark = pytest.mark.slow


def test_dicom_and_png_predict_with_the_imaging_family(imaging_artifact, medai_home):
    import pydicom
    from fastapi.testclient import TestClient
    from PIL import Image

    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    Registry().register(imaging_artifact, name="xray")
    source = require_data("imaging/dicom/CT_small.dcm")
    patient = str(pydicom.dcmread(source).PatientName)
    png = io.BytesIO()
    Image.fromarray((np.tri(28) * 255).astype(np.uint8)).save(png, format="PNG")
    app = create_app(Settings(job_worker=False))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        h = {"Authorization": f"Bearer {key}"}
        detail = http.get("/v1/models/xray", headers=h).json()
        assert detail["input_kind"] == "files" and detail["classes"] == ["normal", "pneumonia"]
        r = http.post(
            "/v1/models/xray/predict?explain=true",
            files=[
                ("file", ("ct.dcm", source.read_bytes(), "application/dicom")),
                ("file", ("x.png", png.getvalue(), "image/png")),
            ],
            headers=h,
        )
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        assert [p["label"] in ("normal", "pneumonia") for p in predictions] == [True, True]
        assert sum(predictions[0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert predictions[0]["explanation_png_base64"]
        assert set(predictions[0]["prediction_set"]) <= {"normal", "pneumonia"}
        r = http.post(
            "/v1/models/xray/predict", files={"file": ("x.dcm", b"not dicom" * 20, "application/dicom")}, headers=h
        )
        assert r.status_code == 415
        app.state.medai.audit_sink.flush(timeout=10)
        rows = list(app.state.medai.audit.export())
    assert patient not in json.dumps(rows)
    for path in medai_home.rglob("*"):
        if path.is_file():
            assert patient.encode() not in path.read_bytes(), path
