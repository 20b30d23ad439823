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


def _obs(ref, code, value, unit=None, when=None, ucum=True):
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "valueQuantity": {"value": value},
    }
    if unit is not None:
        resource["valueQuantity"].update(
            {"unit": unit, "system": "http://unitsofmeasure.org", "code": unit} if ucum else {"unit": unit}
        )
    if when is not None:
        resource["effectiveDateTime"] = when
    return {"fullUrl": ref, "resource": resource}


def test_fhir_quantities_are_converted_by_ucum_unit(service, wdbc_rows):
    """Issue 9, finding 3: the same value in mm and in µm gave risks 0.063 and 1.0; 'kg' passed for a length."""
    admin, clinician = service.client("admin"), service.client("clinician")
    columns = [c["name"] for c in clinician.model("wdbc")["input_schema"]]
    codes = _codes(columns)
    radius_code = next(c for c, col in codes.items() if col == "mean radius")
    with pytest.raises(ServiceError) as err:
        admin.set_loinc_mapping("wdbc", codes, units={"mean radius": "furlongs per mm"})
    assert err.value.status_code == 422 and "UCUM" in err.value.detail
    admin.set_loinc_mapping("wdbc", codes, units={"mean radius": "mm"})
    row = wdbc_rows[0]
    plain = _bundle(row, codes, skip=("mean radius",))
    url = "/v1/fhir/RiskAssessment/$predict?model=wdbc"
    h = service.headers("clinician")

    def risk(*entries):
        bundle = dict(plain, entry=plain["entry"] + list(entries))
        r = service.http.post(url, json=bundle, headers=h)
        return r

    in_mm = risk(_obs("urn:uuid:r1", radius_code, row["mean radius"], "mm")).json()
    in_um = risk(_obs("urn:uuid:r1", radius_code, row["mean radius"] * 1000, "um")).json()
    in_cm = risk(_obs("urn:uuid:r1", radius_code, row["mean radius"] / 10, "cm", ucum=False)).json()
    direct = clinician.predict("wdbc", [row])["predictions"][0]["probability"]
    for out in (in_mm, in_um, in_cm):
        assert float(out["prediction"][0]["probabilityDecimal"]) == pytest.approx(direct, abs=1e-6)
    for entry, words in (
        (_obs("urn:uuid:r1", radius_code, 14.0, "kg"), ("urn:uuid:r1", "'kg'", "cannot be converted", "'mm'")),
        (_obs("urn:uuid:r1", radius_code, 14.0, "parsecs per fortnight", ucum=False), ("not a UCUM unit",)),
        (_obs("urn:uuid:r1", radius_code, 14.0), ("urn:uuid:r1", "no unit", "'mm'")),
    ):
        r = risk(entry)
        assert r.status_code == 422, r.text
        assert all(w in r.json()["detail"] for w in words), r.json()["detail"]
    # a unit for a column whose unit the mapping does not declare cannot be interpreted
    texture_code = next(c for c, col in codes.items() if col == "mean texture")
    bundle = _bundle(row, codes, skip=("mean texture", "mean radius"))
    bundle["entry"] += [_obs("urn:uuid:r1", radius_code, 14.0, "mm"), _obs("urn:uuid:t1", texture_code, 10.0, "mm")]
    r = service.http.post(url, json=bundle, headers=h)
    assert r.status_code == 422 and "declares no unit" in r.json()["detail"]


def test_fhir_duplicate_observations_latest_wins_and_is_stated(service, wdbc_rows):
    admin, clinician = service.client("admin"), service.client("clinician")
    columns = [c["name"] for c in clinician.model("wdbc")["input_schema"]]
    codes = _codes(columns)
    admin.set_loinc_mapping("wdbc", codes)
    code = next(c for c, col in codes.items() if col == "mean radius")
    row = wdbc_rows[0]
    base = _bundle(row, codes, skip=("mean radius",))
    url = "/v1/fhir/RiskAssessment/$predict?model=wdbc"
    h = service.headers("clinician")
    older = _obs("urn:uuid:old", code, 28.0, when="2023-01-01T08:00:00Z")
    newer = _obs("urn:uuid:new", code, row["mean radius"], when="2024-06-01T08:00:00+02:00")
    r = service.http.post(url, json=dict(base, entry=base["entry"] + [newer, older]), headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    direct = clinician.predict("wdbc", [row])["predictions"][0]["probability"]
    assert float(out["prediction"][0]["probabilityDecimal"]) == pytest.approx(direct, abs=1e-6)
    note = " ".join(n["text"] for n in out["note"])
    assert "used urn:uuid:new" in note and "urn:uuid:old" in note and "latest" in note
    assert {"reference": "urn:uuid:old"} not in out["basis"]
    untimed = _obs("urn:uuid:x", code, 28.0)
    r = service.http.post(url, json=dict(base, entry=base["entry"] + [newer, untimed]), headers=h)
    assert r.status_code == 422 and "urn:uuid:x" in r.json()["detail"] and "effective time" in r.json()["detail"]
    tie = _obs("urn:uuid:tie", code, 28.0, when="2024-06-01T06:00:00Z")  # the same instant as newer
    r = service.http.post(url, json=dict(base, entry=base["entry"] + [newer, tie]), headers=h)
    assert r.status_code == 422 and "share the latest effective time" in r.json()["detail"]
