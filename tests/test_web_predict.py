# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Predict through the page at the HTTP level: the form generated from the input schema, field errors, the
result (label, probability, conformal set, contributions), out-of-range warnings, roles, FHIR, and files."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from test_service_fhir import _bundle, _codes
from test_service_support import imaging_artifact, wdbc_artifact, wdbc_rows  # noqa: F401
from web_support import WebApp, make_keys, start_web


@pytest.fixture
def web(wdbc_artifact):
    http, app = start_web({"wdbc": wdbc_artifact})
    with http:
        keys, ids = make_keys(app)
        yield WebApp(app, http, keys, ids)


def _form(web, row, csrf) -> dict[str, str]:
    schema = web.state.load_model(web.state.registry.get("wdbc")).input_fields
    data = {"csrf_token": csrf, "explain": "1"}
    for i, spec in enumerate(schema):
        data[f"f{i}"] = repr(row[spec["name"]])
    return data


def _field_errors(html: str) -> list[str]:
    return re.findall(r'class="field-error" id="(f\d+)-err">([^<]*)<', html)


def test_the_form_follows_the_input_schema(web):
    web.sign_in("clinician")
    html = web.http.get("/models/wdbc/predict").text
    schema = web.state.load_model(web.state.registry.get("wdbc")).input_fields
    labels = re.findall(r'<label for="(f\d+)">([^<]*)</label>', html)
    assert [name for _, name in labels] == [s["name"] for s in schema]
    first = schema[0]
    assert f"training data range {first['min']:.6g} to {first['max']:.6g}" in html
    assert "possible values: at least 0" in html  # the task's physiological limit
    assert 'inputmode="decimal"' in html and 'name="csrf_token"' in html


def test_predict_from_the_form_shows_result_uncertainty_and_explanation(web, wdbc_rows):
    csrf = web.sign_in("clinician")
    expected = web.client()
    from medai.client import Client

    api = Client(key=web.keys["clinician"], http=expected).predict("wdbc", wdbc_rows[:1], explain=True)
    want = api["predictions"][0]
    r = web.http.post("/models/wdbc/predict", data=_form(web, wdbc_rows[0], csrf))
    assert r.status_code == 200
    html = r.text
    assert f'<p class="big">{want["label"]}</p>' in html
    assert f"{want['probability'] * 100:.1f}%" in html
    assert "Conformal prediction set (90% coverage)" in html
    assert ("Uncertain — refer" in html) == bool(want["uncertain"])
    for c in want["contributions"]:
        assert f'<th scope="row">{c["feature"]}</th>' in html
    assert html.count('<rect class="pos"') + html.count('<rect class="neg"') == len(want["contributions"])
    rows = [row for row in web.audit() if row["action"] == "explain"]
    assert rows[-1]["detail"] == {"records": 1, "via": "web"} and rows[-1]["input_sha256"]
    assert rows[-1]["key_id"] == web.key_ids["clinician"]


def test_bad_values_get_field_errors_and_no_prediction(web, wdbc_rows):
    csrf = web.sign_in("clinician")
    data = _form(web, wdbc_rows[0], csrf)
    data["f0"], data["f1"] = "twelve", "-5"
    r = web.http.post("/models/wdbc/predict", data=data)
    assert r.status_code == 422
    errors = dict(_field_errors(r.text))
    assert errors["f0"].endswith("enter a number (for example 12.5)")
    assert "-5 is not a possible value (expected at least 0)" in errors["f1"]
    assert 'value="twelve"' in r.text and 'aria-invalid="true"' in r.text  # typed values kept
    assert not [row for row in web.audit() if row["action"] in ("predict", "explain")]
    # a value the model never saw in training: predicted, with a warning beside the field
    data["f0"], data["f1"] = "1000", repr(wdbc_rows[0]["mean texture"])
    r = web.http.post("/models/wdbc/predict", data=data)
    assert r.status_code == 200 and "Outside the training data: mean radius above the training range" in r.text


def test_viewer_is_refused_predict(web, wdbc_rows):
    csrf = web.sign_in("viewer")
    assert web.http.get("/models/wdbc/predict").status_code == 403
    r = web.http.post("/models/wdbc/predict", data=_form(web, wdbc_rows[0], csrf))
    assert r.status_code == 403 and "does not allow" in r.text
    assert [row["action"] for row in web.audit() if row["outcome"] == "denied"] == ["web_forbidden"] * 2


def test_fhir_bundle_through_the_page(web, wdbc_rows):
    csrf = web.sign_in("clinician")
    columns = [c["name"] for c in web.state.load_model(web.state.registry.get("wdbc")).input_fields]
    codes = _codes(columns)
    bundle = json.dumps(_bundle(wdbc_rows[0], codes))
    r = web.http.post("/models/wdbc/fhir", data={"csrf_token": csrf, "bundle": bundle})
    assert r.status_code == 422 and "LOINC mapping" in r.text and "no LOINC mapping yet" in r.text
    web.state.loinc.set("wdbc", {"mapping": codes})
    r = web.http.post("/models/wdbc/fhir", data={"csrf_token": csrf, "bundle": bundle})
    assert r.status_code == 200 and "RiskAssessment" in r.text and "risk of malignant" in r.text
    r = web.http.post("/models/wdbc/fhir", data={"csrf_token": csrf, "bundle": "{not json"})
    assert r.status_code == 422 and "FHIR:" in r.text


def test_files_for_an_image_model_and_bad_files(imaging_artifact, medai_home):
    from conftest import require_data
    from PIL import Image

    http, app = start_web({"xray": imaging_artifact})
    with http:
        keys, ids = make_keys(app)
        web = WebApp(app, http, keys, ids)
        csrf = web.sign_in("clinician")
        page = http.get("/models/xray/predict").text
        assert 'type="file"' in page and "de-identified" in page and 'data-max-bytes="' in page
        png = io.BytesIO()
        Image.fromarray((np.tri(28) * 255).astype(np.uint8)).save(png, format="PNG")
        r = http.post("/models/xray/predict", data={"csrf_token": csrf, "explain": "1"},
                      files={"file": ("x.png", png.getvalue(), "image/png")})
        assert r.status_code == 200, r.text
        assert 'src="data:image/png;base64,' in r.text and "Grad-CAM" in r.text
        assert "Result for x.png" in r.text
        dicom = require_data("imaging/dicom/CT_small.dcm")
        r = http.post("/models/xray/predict", data={"csrf_token": csrf},
                      files={"file": ("ct.dcm", dicom.read_bytes(), "application/dicom")})
        assert r.status_code == 200 and "Result for ct.dcm" in r.text
        r = http.post("/models/xray/predict", data={"csrf_token": csrf},
                      files={"file": ("notes.txt", b"hello", "text/plain")})
        assert r.status_code == 415 and "unsupported file type" in r.text and 'role="alert"' in r.text
        r = http.post("/models/xray/predict", data={"csrf_token": csrf})
        assert r.status_code == 422 and "Choose or drop a file" in r.text
        big = b"\0" * (app.state.medai.settings.max_body_bytes + 1)
        r = http.post("/models/xray/predict", data={"csrf_token": csrf}, files={"file": ("big.png", big, "image/png")})
        assert r.status_code == 413 and "too large" in r.text and "<h1>" in r.text
        assert http.get("/models/xray/predict").status_code == 200  # the server is still up
