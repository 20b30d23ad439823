"""Prediction: ``POST /v1/models/{name}[/versions/{v}]/predict`` (permission ``predict``; ``?explain=true``
also needs ``explain``).

One endpoint for every model family: ``application/json`` ``{"records": [...]}`` for tabular models,
``multipart/form-data`` files (field ``file``, repeatable) for file-based families (images, DICOM), which
are handed to ``model.predict_files(paths, explain)``. DICOM uploads are de-identified in memory before
anything is written; the temporary files are removed after the prediction.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from medai.errors import MedAIError, NotFoundError
from medai.serving.routers.common import (
    UnsupportedMediaType,
    random_id,
    sha256_bytes,
    store_upload,
    validate_records,
)
from medai.serving.schemas import PredictRequest, PredictResponse
from medai.serving.security import audit_box, principal, require

router = APIRouter(tags=["predict"], dependencies=[Depends(require("predict"))])

MAX_FILES = 64

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["file"],
                }
            },
        },
    }
}


def tabular_predictions(model, records: list[dict[str, Any]], explain: bool, top_k: int = 5) -> list[dict]:
    validate_records(records, model.input_schema)
    probabilities = model.predict_records(records)
    negative, positive = model.schema.classes[0], model.schema.positive_label
    contributions = None
    if explain:
        import pandas as pd

        contributions = model.contributions(pd.DataFrame.from_records(records), top_k=top_k, source="records")
    out = []
    for i, p in enumerate(probabilities):
        p = float(p)
        item = {
            "index": i,
            "label": positive if p >= model.threshold else negative,
            "probability": p,
            "probabilities": {str(negative): 1.0 - p, str(positive): p},
        }
        if contributions is not None:
            item["contributions"] = contributions[i]
        out.append(item)
    return out


def resolve(state, name: str, version: int | None):
    record = state.record(name, version)
    if record.stage == "retired" and version is not None:
        raise NotFoundError(f"model {name!r} version {version} is retired")
    return record


async def call_model(state, fn, *args):
    return await asyncio.wait_for(run_in_threadpool(fn, *args), state.settings.predict_timeout_s)


async def load(state, record):
    model = state._models.get((record.name, record.version))
    return model if model is not None else await run_in_threadpool(state.load_model, record)


async def _predict(request: Request, name: str, version: int | None, explain: bool) -> dict:
    state = request.app.state.medai
    box = audit_box(request)
    box["action"], box["model"] = ("explain" if explain else "predict"), name
    if explain:
        principal(request).require("explain")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", "multipart/form-data"):
        raise UnsupportedMediaType(
            f'unsupported content type {ctype or "none"!r}; send application/json {{"records": [...]}} for '
            "tabular models or multipart/form-data files for image models"
        )
    record = resolve(state, name, version)
    box["model_version"] = record.version
    body = await request.body()
    box["input_sha256"] = sha256_bytes(body)
    model = await load(state, record)
    family = getattr(model, "family", "tabular")
    result = {"model": record.name, "version": record.version}
    if ctype == "application/json":
        if family != "tabular":
            raise UnsupportedMediaType(f"model {name!r} ({family}) takes files: send multipart/form-data field 'file'")
        try:
            payload = PredictRequest.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError([dict(e, loc=("body", *e["loc"])) for e in exc.errors()]) from None
        if explain:  # SHAP can take a while: in a thread, under the timeout
            predictions = await call_model(state, tabular_predictions, model, payload.records, explain)
        else:  # the compiled fast path takes microseconds a record: a thread hop would cost more than the work
            predictions = tabular_predictions(model, payload.records, explain)
        box["detail"] = {"records": len(payload.records)}
        body = dict(result, threshold=model.threshold, positive_label=model.schema.positive_label,
                    predictions=predictions)
        if explain:
            return body
        # built here from typed values in the PredictResponse shape (tests check it against the schema):
        # skipping FastAPI's response-model round trip keeps the hot path short
        return JSONResponse(body)
    if family == "tabular":
        raise UnsupportedMediaType(f'model {name!r} is tabular: send application/json {{"records": [...]}}')
    if not hasattr(model, "predict_files"):
        raise MedAIError(f"model {name!r} ({family}) cannot predict from files")
    form = await request.form(max_files=MAX_FILES, max_fields=16)
    uploads = [f for key in ("file", "files") for f in form.getlist(key) if hasattr(f, "read")]
    if not uploads:
        raise MedAIError("no file uploaded: send the image or DICOM file in the multipart field 'file'")
    folder = state.uploads / random_id()
    try:
        paths, names = [], []
        for i, upload in enumerate(uploads):
            names.append(upload.filename)
            data = await upload.read()
            paths.append(
                await run_in_threadpool(
                    store_upload, data, upload.filename, upload.content_type, folder, i, state.deid_secret
                )
            )
        items = await call_model(state, model.predict_files, paths, explain)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    box["detail"] = {"files": len(paths)}
    predictions = []
    for i, item in enumerate(items):
        probs = {str(k): float(v) for k, v in (item.get("probabilities") or {}).items()}
        predictions.append(
            {
                "index": i,
                "label": str(item.get("label")),
                "probabilities": probs,
                "probability": item.get("probability"),
                "file": names[i],
                "gradcam_png_base64": item.get("gradcam_png_base64") if explain else None,
            }
        )
    return dict(result, threshold=getattr(model, "threshold", None), predictions=predictions)


@router.post(
    "/models/{name}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    openapi_extra=_BODY_DOC,
    summary="Predict with the default version (production, else newest)",
)
async def predict(name: str, request: Request, explain: bool = False) -> dict:
    return await _predict(request, name, None, explain)


@router.post(
    "/models/{name}/versions/{version}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    openapi_extra=_BODY_DOC,
    summary="Predict with one version",
)
async def predict_version(name: str, version: int, request: Request, explain: bool = False) -> dict:
    return await _predict(request, name, version, explain)
