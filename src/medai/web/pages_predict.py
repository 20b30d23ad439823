"""Predict: the form generated from the model's inputs, file drop for image/DICOM models, a FHIR Bundle box,
and the result — label at the model's threshold, probability or value, the conformal set or interval with an
"uncertain — refer" flag, and the explanation (contribution bars, Grad-CAM picture, highlighted text)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from medai.web.context import SignedIn, form_of, render, signed_in, web_state
from medai.web.forms import api_field_errors, form_fields, out_of_range_warnings, parse_record
from medai.web.pages_models import api_error

router = APIRouter(include_in_schema=False)

MAX_FILES = 16
FHIR_JSON = "application/fhir+json"


async def _model(request: Request, user: SignedIn, name: str) -> dict[str, Any]:
    user.require("predict")
    result = await user.api(request, "GET", f"/v1/models/{quote(name, safe='')}")
    if not result.ok:
        raise api_error(result)
    return result.json()


def _accept(detail: dict[str, Any]) -> str:
    formats = [str(f).lower() for f in (detail.get("file_input") or {}).get("formats") or []]
    suffixes = {"dicom": ".dcm,.dicom", "png": ".png", "jpeg": ".jpg,.jpeg", "jpg": ".jpg,.jpeg", "npy": ".npy",
                "tiff": ".tif,.tiff", "bmp": ".bmp", "nifti": ".nii,.nii.gz"}
    out = [suffixes.get(f, "." + f) for f in formats]
    return ",".join(out) or ".dcm,.png,.jpg,.jpeg"


def _page(request: Request, user: SignedIn, detail: dict[str, Any], *, fields=None, results=None,
          errors: list[str] | None = None, fhir: dict[str, Any] | None = None, fhir_text: str = "",
          status: int = 200) -> HTMLResponse:
    records = detail["input_kind"] == "records"
    return render(
        request,
        "predict.html",
        {
            "title": f"Predict · {detail['name']}",
            "model": detail,
            "records": records,
            "fields": fields if fields is not None else (form_fields(detail.get("input_schema") or []) if records
                                                         else []),
            "accept": _accept(detail),
            "max_bytes": web_state(request).max_upload_bytes,
            "results": results or [],
            "errors": errors or [],
            "fhir": fhir,
            "fhir_text": fhir_text,
            "can_explain": user.can("explain"),
        },
        status=status,
    )


@router.get("/models/{name}/predict")
async def predict_page(name: str, request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    return _page(request, user, await _model(request, user, name))


@router.post("/models/{name}/predict")
async def predict(name: str, request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    form = await form_of(request, user, max_files=MAX_FILES)
    detail = await _model(request, user, name)
    explain = bool(form.get("explain")) and user.can("explain")
    path = f"/v1/models/{quote(name, safe='')}/predict"
    params = {"explain": "true" if explain else None}
    if detail["input_kind"] == "records":
        fields = form_fields(detail.get("input_schema") or [])
        record = parse_record(fields, form)
        if any(f.error for f in fields):
            return _page(request, user, detail, fields=fields, errors=["Some values need correcting (see below)."],
                         status=422)
        answer = await user.api(request, "POST", path, params=params, json_body={"records": [record]})
        if not answer.ok:
            loose = api_field_errors(fields, answer.field_errors)
            return _page(request, user, detail, fields=fields, errors=loose or [answer.detail],
                         status=answer.status)
        body = answer.json()
        item = body["predictions"][0]
        out_of_range_warnings(fields, item.get("out_of_range") or [])
        text = next((record.get(f.name) for f in fields if f.kind == "text" and record.get(f.name)), None)
        return _page(request, user, detail, fields=fields, results=[_result(body, item, text)])
    uploads = [f for f in form.getlist("file") if hasattr(f, "read") and (f.filename or f.size)]
    if not uploads:
        return _page(request, user, detail, errors=["Choose or drop a file (DICOM or an image) first."], status=422)
    files = [("file", (u.filename or "upload", await u.read(), u.content_type or "application/octet-stream"))
             for u in uploads]
    answer = await user.api(request, "POST", path, params=params, files=files)
    if not answer.ok:
        return _page(request, user, detail, errors=[answer.detail], status=answer.status)
    body = answer.json()
    return _page(request, user, detail, results=[_result(body, item, None) for item in body["predictions"]])


def _picture(item: dict[str, Any]) -> str | None:
    data = item.get("explanation_png_base64")
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return "data:image/png;base64," + data if raw[:8] == b"\x89PNG\r\n\x1a\n" else None


def _bars(contributions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Contribution bars as SVG geometry (no inline style: the CSP allows none)."""
    if not contributions:
        return []
    scale = max(abs(float(c.get("contribution") or 0.0)) for c in contributions) or 1.0
    half = 150
    out = []
    for c in contributions:
        value = float(c.get("contribution") or 0.0)
        width = max(1.0, abs(value) / scale * half)
        out.append({
            "feature": str(c.get("feature")),
            "value": c.get("value"),
            "contribution": value,
            "x": half if value >= 0 else half - width,
            "width": width,
            "cls": "pos" if value >= 0 else "neg",
        })
    return out


def _highlighted(text: str | None, highlights: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The text cut into plain and highlighted pieces (weight buckets as classes), escaped by the template."""
    if not text or not highlights:
        return None
    spans = sorted((h for h in highlights if 0 <= int(h.get("start", -1)) < int(h.get("end", -1)) <= len(text)),
                   key=lambda h: int(h["start"]))
    scale = max((abs(float(h.get("weight") or 0.0)) for h in spans), default=1.0) or 1.0
    pieces, at = [], 0
    for h in spans:
        start, end = int(h["start"]), int(h["end"])
        if start < at:
            continue
        if start > at:
            pieces.append({"text": text[at:start]})
        weight = float(h.get("weight") or 0.0)
        level = 1 + min(2, int(abs(weight) / scale * 3 - 1e-9)) if weight else 1
        label = h.get("label") or h.get("feature") or ""
        pieces.append({"text": text[start:end], "cls": f"{'w' if weight >= 0 else 'n'}{level}",
                       "title": f"{label} {weight:+.3f}".strip()})
        at = end
    if at < len(text):
        pieces.append({"text": text[at:]})
    return pieces


def _result(body: dict[str, Any], item: dict[str, Any], text: str | None) -> dict[str, Any]:
    interval = item.get("interval")
    return {
        "kind": body.get("kind"),
        "threshold": body.get("threshold"),
        "positive_label": body.get("positive_label"),
        "label": item.get("label"),
        "labels": item.get("labels"),
        "value": item.get("value"),
        "probability": item.get("probability"),
        "probabilities": item.get("probabilities") or {},
        "prediction_set": item.get("prediction_set"),
        "interval": interval,
        "coverage": item.get("coverage"),
        "uncertain": item.get("uncertain"),
        "outside": item.get("outside_training_data"),
        "out_of_range": item.get("out_of_range") or [],
        "explains": item.get("explains"),
        "summary": item.get("summary"),
        "bars": _bars(item.get("contributions") or []),
        "picture": _picture(item),
        "highlighted": _highlighted(text, item.get("highlights")),
        "file": item.get("file"),
    }


@router.post("/models/{name}/fhir")
async def fhir_predict(name: str, request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    form = await form_of(request, user, max_files=0)
    detail = await _model(request, user, name)
    text = str(form.get("bundle") or "")
    if not text.strip():
        return _page(request, user, detail, errors=["Paste a FHIR Bundle (JSON) first."], fhir_text=text, status=422)
    answer = await user.api(request, "POST", "/v1/fhir/RiskAssessment/$predict", params={"model": name},
                            content=text.encode(), content_type=FHIR_JSON)
    if not answer.ok:
        return _page(request, user, detail, errors=[f"FHIR: {answer.detail}"], fhir_text=text, status=answer.status)
    resource = answer.json()
    prediction = (resource.get("prediction") or [{}])[0]
    summary = {
        "probability": prediction.get("probabilityDecimal"),
        "outcome": ((prediction.get("outcome") or {}).get("text")),
        "risk": (prediction.get("qualitativeRisk") or {}).get("text"),
        "rationale": prediction.get("rationale"),
        "json": json.dumps(resource, indent=2),
    }
    return _page(request, user, detail, fhir=summary, fhir_text=text)

