"""FHIR: ``POST /v1/fhir/RiskAssessment/$predict?model=NAME[&version=V]`` — a FHIR R4 Bundle (Patient +
Observations) in, a ``RiskAssessment`` out (permission ``predict``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from medai.errors import MedAIError
from medai.serving import fhir
from medai.serving.limits import loads_json
from medai.serving.routers.common import UnsupportedMediaType, sha256_bytes
from medai.serving.routers.predict import call_model, load, record_predictions, resolve
from medai.serving.security import audit_box, require

router = APIRouter(tags=["fhir"], dependencies=[Depends(require("predict"))])

FHIR_JSON = "application/fhir+json"


@router.post(
    "/fhir/RiskAssessment/$predict",
    summary="FHIR Bundle in, RiskAssessment out",
    responses={200: {"content": {FHIR_JSON: {}}}},
    openapi_extra={"requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}},
)
async def fhir_predict(
    request: Request, model: str = Query(..., description="registered model name"), version: int | None = None
) -> JSONResponse:
    state = request.app.state.medai
    box = audit_box(request)
    box["action"], box["model"] = "fhir_predict", model
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (FHIR_JSON, "application/json"):
        raise UnsupportedMediaType(f"unsupported content type {ctype or 'none'!r}; send {FHIR_JSON}")
    record = resolve(state, model, version)
    box["model_version"] = record.version
    body = await request.body()
    box["input_sha256"] = sha256_bytes(body)
    payload = loads_json(body, "the FHIR Bundle")  # bounded depth and number sizes
    mapping = state.loinc.get(record.name)
    if not mapping:
        raise MedAIError(
            f"model {record.name!r} has no LOINC mapping; an administrator sets one with "
            f"PUT /v1/admin/models/{record.name}/loinc-mapping"
        )
    loaded = await load(state, record)
    fhir.check_risk_model(loaded, record.name)
    bundle = fhir.parse_bundle(payload)
    row, patient_ref, basis, notes = fhir.bundle_to_record(bundle, mapping, loaded.input_fields)
    observe = state.observer(record, loaded)
    prediction = (await call_model(state, record_predictions, loaded, [row], False, 5, False, observe))[0]
    resource = fhir.risk_assessment(
        record.name,
        record.version,
        prediction["probability"],
        prediction["label"],
        loaded.target.positive_label,
        loaded.threshold,
        patient_ref,
        basis,
        notes,
    )
    return JSONResponse(resource, media_type=FHIR_JSON)
