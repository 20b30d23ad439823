"""``POST /v1/deid`` (clinician role, permission ``predict``): de-identify notes in the service.

The notes are never logged or stored: the audit row holds the sha256 of the request body, the method and the
number of records; error messages name fields, never their values.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from medai.serving.security import audit_box, require

router = APIRouter(tags=["deid"], dependencies=[Depends(require("predict"))])


class DeidRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=1_000_000, description="the note")
    patient: str | None = Field(None, max_length=200, description="surrogates and date shifts are consistent "
                                "within a patient (default: each record its own patient)")


class DeidRequest(BaseModel):
    """Notes to de-identify."""

    model_config = ConfigDict(extra="forbid")
    records: list[DeidRecord] = Field(min_length=1, max_length=1000)
    method: Literal["redact", "tag", "surrogate"] = "tag"
    model: str | None = Field(None, description="a registered entity model that joins the detectors")


class DeidSpan(BaseModel):
    start: int
    end: int
    type: str
    source: str
    score: float
    output_start: int
    output_end: int
    changed: bool


class DeidResult(BaseModel):
    index: int
    text: str
    spans: list[DeidSpan]


class DeidResponse(BaseModel):
    method: str
    results: list[DeidResult]


@router.post("/deid", response_model=DeidResponse, summary="De-identify notes (redact, tag or surrogate)")
async def deid(payload: DeidRequest, request: Request) -> dict:
    from medai.modalities.text.deid.api import deidentify_texts
    from medai.modalities.text.deid.detect import Detector
    from medai.serving.routers.common import sha256_bytes

    state = request.app.state.medai
    box = audit_box(request)
    box["action"] = "deid"
    box["input_sha256"] = sha256_bytes(await request.body())
    model = None
    if payload.model:
        record = state.record(payload.model)
        box["model"], box["model_version"] = record.name, record.version
        model = await run_in_threadpool(state.load_model, record)
    detector = Detector(model=model)
    texts = [r.text for r in payload.records]
    patients = [r.patient or f"record-{i}" for i, r in enumerate(payload.records)]
    results = await run_in_threadpool(deidentify_texts, texts, payload.method, patients, detector, state.deid_secret)
    box["detail"] = {"records": len(texts), "method": payload.method}
    return {"method": payload.method,
            "results": [{"index": i, "text": text, "spans": spans} for i, (text, spans) in enumerate(results)]}
