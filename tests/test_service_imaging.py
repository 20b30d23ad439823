# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""The real imaging family through the service: a DICOM and a PNG in, probabilities and Grad-CAM out, with
the DICOM de-identified before anything is stored."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def imaging_artifact(tmp_path_factory) -> Path:
    """A tiny image classifier (one epoch on toy images), trained once per session (~15 s)."""
    pytest.importorskip("torch")
    from medai.modalities.imaging.data import image_dataset
    from medai.road import TrainOptions, train
    from medai.tasks.catalog import get_task

    rng = np.random.default_rng(0)
    images, labels, official, start = [], [], {}, 0
    for split, n in zip(("train", "val", "test"), (64, 32, 32), strict=True):
        y = rng.integers(0, 2, n)
        images += [(rng.random((28, 28)) * 0.3 + 0.7 * k * np.tri(28)).astype(np.float32) for k in y]
        labels += list(y)
        official[split] = np.arange(start, start + n)
        start += n
    data = image_dataset(images, np.asarray(labels), ["normal", "pneumonia"], 2, 28, source="toy", official=official)
    out = tmp_path_factory.mktemp("imaging") / "model"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDAI_HOME", str(tmp_path_factory.mktemp("imaging_home")))
        options = TrainOptions(learner="small-cnn", n_boot=20, show_progress=False,
                               extra={"epochs": 1, "threads": 1})
        train(get_task("pneumonia-xray"), data, out, options)
    return out


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
