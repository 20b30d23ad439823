# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""FHIR: a Bundle (Patient + Observations) in, a RiskAssessment out, through a per-model LOINC mapping."""

from __future__ import annotations

import pytest
from test_service_support import service, wdbc_artifact, wdbc_rows  # noqa: F401

from medai.client import ServiceError


def _codes(columns):
    # made-up LOINC-style codes, one per column (the mapping is the model owner's decision)
    return {f"{90000 + i}-{i % 10}": col for i, col in enumerate(columns)}


def _bundle(row, codes, skip=()):
    entries = [
        {
            "fullUrl": "urn:uuid:patient-1",
            "resource": {
                "resourceType": "Patient",
                "id": "p1",
                "gender": "female",
                "birthDate": "1970-05-01",
            },
        }
    ]
    for i, (code, col) in enumerate(codes.items()):
        if col in skip:
            continue
        entries.append(
            {
                "fullUrl": f"urn:uuid:obs-{i}",
                "resource": {
                    "resourceType": "Observation",
                    "id": f"o{i}",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": col}]},
                    "subject": {"reference": "urn:uuid:patient-1"},
                    "valueQuantity": {"value": row[col]},
                },
            }
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def test_fhir_bundle_in_risk_assessment_out(service, wdbc_rows):
    from fhir.resources.R4B.riskassessment import RiskAssessment

    admin, clinician = service.client("admin"), service.client("clinician")
    columns = [c["name"] for c in clinician.model("wdbc")["input_schema"]]
    codes = _codes(columns)
    with pytest.raises(ServiceError) as err:  # no mapping yet
        clinician.fhir_predict("wdbc", _bundle(wdbc_rows[0], codes))
    assert err.value.status_code == 422 and "LOINC mapping" in err.value.detail
    with pytest.raises(ServiceError) as err:
        admin.set_loinc_mapping("wdbc", {"1234-5": "not a column"})
    assert err.value.status_code == 422
    admin.set_loinc_mapping("wdbc", codes)
    assert clinician.model("wdbc")["loinc_mapping"] == codes
    out = clinician.fhir_predict("wdbc", _bundle(wdbc_rows[0], codes))
    resource = RiskAssessment.model_validate(out)
    assert resource.status == "final" and resource.subject.reference == "urn:uuid:patient-1"
    p = float(resource.prediction[0].probabilityDecimal)
    direct = clinician.predict("wdbc", wdbc_rows[:1])["predictions"][0]["probability"]
    assert p == pytest.approx(direct, abs=1e-6)
    assert len(resource.basis) == 30


def test_fhir_bundle_without_needed_observations_is_422(service, wdbc_rows):
    admin, clinician = service.client("admin"), service.client("clinician")
    columns = [c["name"] for c in clinician.model("wdbc")["input_schema"]]
    codes = _codes(columns)
    admin.set_loinc_mapping("wdbc", codes)
    with pytest.raises(ServiceError) as err:
        clinician.fhir_predict("wdbc", _bundle(wdbc_rows[0], codes, skip=("mean radius", "worst area")))
    assert err.value.status_code == 422
    assert "mean radius" in err.value.detail and "worst area" in err.value.detail
    missing_code = next(c for c, col in codes.items() if col == "mean radius")
    assert missing_code in err.value.detail
    h = service.headers("clinician")
    url = "/v1/fhir/RiskAssessment/$predict?model=wdbc"
    r = service.http.post(url, content=b"{not json", headers={**h, "Content-Type": "application/fhir+json"})
    assert r.status_code == 422
    r = service.http.post(url, json={"resourceType": "Patient"}, headers=h)
    assert r.status_code == 422 and "Bundle" in r.json()["detail"]
    r = service.http.post(url, content=b"<Bundle/>", headers={**h, "Content-Type": "application/fhir+xml"})
    assert r.status_code == 415
    assert service.http.post("/v1/fhir/RiskAssessment/$predict?model=nope", json={}, headers=h).status_code == 404
    assert service.http.get("/health").status_code == 200
