"""Prediction: ``POST /v1/models/{name}[/versions/{v}]/predict`` (permission ``predict``; ``?explain=true``
also needs ``explain``).

One endpoint for every modality, by its input contract: ``application/json`` ``{"records": [...]}`` for
records models (tables, SMILES, text, ...), ``multipart/form-data`` files (field ``file``, repeatable) for
file models (images, DICOM), which are handed to ``model.predict_files(paths, explain)``. DICOM uploads are
de-identified in memory before anything is written; the temporary files are removed after the prediction.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from medai.budget import use as use_budget
from medai.errors import MedAIError, NotFoundError
from medai.modalities import RECORDS
from medai.monitoring.store import check_record_ids
from medai.serving.limits import request_budget
from medai.serving.routers.common import (
    UnsupportedMediaType,
    check_predictions,
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


def record_predictions(model, records: list[dict[str, Any]], explain: bool, top_k: int = 5,
                       refuse_outside: bool = False, observe=None) -> list[dict]:
    """Predictions for JSON records (records contract), validated against the model's input fields;
    ``observe`` is the monitoring hook (see :meth:`medai.road.model.Model.predict_records`)."""
    validate_records(records, model.input_fields)
    return check_predictions(model.predict_records(records, explain=explain, top_k=top_k,
                                                   refuse_outside=refuse_outside, observe=observe))


def resolve(state, name: str, version: int | None):
    record = state.record(name, version)
    if record.stage == "retired" and version is not None:
        raise NotFoundError(f"model {name!r} version {version} is retired")
    return record


async def call_model(state, fn, *args):
    """``fn(*args)`` in a worker thread under the request's budget (time and pixels); when the time limit
    fires the client gets 504 and the budget is cancelled, so the thread stops at its next step."""
    budget = request_budget(state.settings)
    with use_budget(budget):
        try:
            return await asyncio.wait_for(run_in_threadpool(fn, *args), state.settings.predict_timeout_s)
        except TimeoutError:
            budget.cancel()
            raise


async def load(state, record):
    model = state._models.get((record.name, record.version))
    return model if model is not None else await run_in_threadpool(state.load_model, record)


OutOfRange = Annotated[Literal["flag", "refuse"], Query(
    description="records outside the model's training data (or physiological limits): flag them in the answer "
                "(default) or refuse the request with 422")]


async def _predict(request: Request, name: str, version: int | None, explain: bool, out_of_range: str) -> dict:
    state = request.app.state.medai
    box = audit_box(request)
    box["action"], box["model"] = ("explain" if explain else "predict"), name
    if explain:
        principal(request).require("explain")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", "multipart/form-data"):
        raise UnsupportedMediaType(
            f'unsupported content type {ctype or "none"!r}; send application/json {{"records": [...]}} to a '
            "model that takes records, multipart/form-data files to a model that takes files"
        )
    record = resolve(state, name, version)
    box["model_version"] = record.version
    body = await request.body()
    box["input_sha256"] = sha256_bytes(body)
    model = await load(state, record)
    contract = model.input_contract
    result = {"model": record.name, "version": record.version, "kind": model.kind,
              "threshold": model.threshold, "positive_label": model.target.positive_label}
    if (ctype == "application/json") != (contract == RECORDS):
        expected = ('application/json {"records": [...]}' if contract == RECORDS
                    else "multipart/form-data files in the field 'file'")
        raise UnsupportedMediaType(f"model {name!r} ({model.family}) takes {expected}")
    refuse = out_of_range == "refuse"
    if contract == RECORDS:
        try:
            payload = PredictRequest.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError([dict(e, loc=("body", *e["loc"])) for e in exc.errors()]) from None
        check_record_ids(payload.record_ids, len(payload.records))
        observe = state.observer(record, model, payload.record_ids)
        if model.fast_records and not explain:
            # a fast path takes microseconds a record: a thread hop would cost more than the work
            predictions = record_predictions(model, payload.records, explain, 5, refuse, observe)
        else:  # the learner or an explanation can take a while: in a thread, under the timeout
            predictions = await call_model(state, record_predictions, model, payload.records, explain, 5, refuse,
                                           observe)
        box["detail"] = {"records": len(payload.records)}
        if state.metrics is not None:
            state.metrics.predictions_of(record.name, len(predictions))
        body = dict(result, predictions=predictions)
        if explain:
            return body
        # built here from typed values in the PredictResponse shape (tests check it against the schema):
        # skipping FastAPI's response-model round trip keeps the hot path short
        return JSONResponse({k: v for k, v in body.items() if v is not None})
    form = await request.form(max_files=MAX_FILES, max_fields=16)
    uploads = [f for key in ("file", "files") for f in form.getlist(key) if hasattr(f, "read")]
    if not uploads:
        raise MedAIError("no file uploaded: send the file(s) in the multipart field 'file'")
    record_ids = [str(v) for v in form.getlist("record_id") if isinstance(v, str)] or None
    check_record_ids(record_ids, len(uploads), "record_id (one form field per file)")
    observe = state.observer(record, model, record_ids)
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
        items = await call_model(state, model.predict_files, paths, explain, refuse, observe)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    box["detail"] = {"files": len(paths)}
    if state.metrics is not None:
        state.metrics.predictions_of(record.name, len(items))
    for item, name_ in zip(items, names, strict=True):
        item["file"] = name_
    return dict(result, predictions=items)


@router.post(
    "/models/{name}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    openapi_extra=_BODY_DOC,
    summary="Predict with the default version (production, else newest)",
)
async def predict(name: str, request: Request, explain: bool = False, out_of_range: OutOfRange = "flag") -> dict:
    return await _predict(request, name, None, explain, out_of_range)


@router.post(
    "/models/{name}/versions/{version}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    openapi_extra=_BODY_DOC,
    summary="Predict with one version",
)
async def predict_version(name: str, version: int, request: Request, explain: bool = False,
                          out_of_range: OutOfRange = "flag") -> dict:
    return await _predict(request, name, version, explain, out_of_range)
