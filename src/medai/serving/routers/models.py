"""Reading the registry: ``GET /v1/models``, ``GET /v1/models/{name}`` (permission ``models:read``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from medai.errors import NotFoundError
from medai.modalities import RECORDS
from medai.serving.schemas import ModelDetail, ModelList, ModelSummary
from medai.serving.security import audit_box, require

router = APIRouter(tags=["models"], dependencies=[Depends(require("models:read"))])


def summary(record) -> dict:
    data = record.to_json()
    data.pop("artifact_path", None)
    data.pop("data_fingerprint", None)
    return data


@router.get("/models", response_model=ModelList, summary="List every registered model version")
def list_models(request: Request, latest_only: bool = False) -> dict:
    records = request.app.state.medai.registry.list_models(latest_only=latest_only)
    return {"models": [summary(r) for r in records]}


def _detail(state, name: str) -> dict:
    versions = state.registry.versions(name)
    default = state.registry.get(name)
    model = state.load_model(default)
    card_path = Path(default.artifact_path) / "card.md"
    records = model.input_contract == RECORDS
    return {
        "name": name,
        "default_version": default.version,
        "versions": [ModelSummary(**summary(r)) for r in versions],
        "task": default.task,
        "kind": model.kind,
        "modality": default.modality,
        "family": default.family,
        "input_kind": model.input_contract,
        "input_schema": model.input_fields if records else None,
        "file_input": None if records else model.input_schema,
        "classes": [str(c) for c in model.target.classes] or None,
        "positive_label": model.target.positive_label,
        "threshold": model.threshold,
        "decision": model.decision,
        "conformal": {"coverage": model.conformal.coverage, "mode": model.conformal.mode} if model.conformal else None,
        "metrics": default.metrics,
        "model_card": card_path.read_text(encoding="utf-8") if card_path.is_file() else None,
        "loinc_mapping": (state.loinc.get(name) or {}).get("mapping"),
    }


@router.get("/models/{name}", response_model=ModelDetail, summary="One model: versions, inputs, metrics, card")
async def get_model(name: str, request: Request) -> dict:
    audit_box(request)["model"] = name
    return await run_in_threadpool(_detail, request.app.state.medai, name)


# the road's report: its own HTML (one inline <style>, data: images, no script), shown sandboxed
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"


@router.get(
    "/models/{name}/versions/{version}/report",
    response_class=HTMLResponse,
    summary="A version's evaluation report (the HTML the road wrote at training)",
    responses={200: {"content": {"text/html": {}}}},
)
def get_report(name: str, version: int, request: Request) -> HTMLResponse:
    box = audit_box(request)
    box["model"], box["model_version"] = name, version
    record = request.app.state.medai.registry.get(name, version)
    path = Path(record.artifact_path) / "report.html"
    if not path.is_file():
        raise NotFoundError(f"model {name!r} version {version} has no report")
    return HTMLResponse(path.read_text(encoding="utf-8"), headers={"Content-Security-Policy": REPORT_CSP})
