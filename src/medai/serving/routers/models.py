"""Reading the registry: ``GET /v1/models``, ``GET /v1/models/{name}`` (permission ``models:read``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

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
    files = getattr(model, "family", "tabular") != "tabular"
    card_path = Path(default.artifact_path) / "card.md"
    detail = {
        "name": name,
        "default_version": default.version,
        "versions": [ModelSummary(**summary(r)) for r in versions],
        "task": default.task,
        "kind": default.kind,
        "modality": default.modality,
        "family": default.family,
        "input_kind": "files" if files else "records",
        "metrics": default.metrics,
        "model_card": card_path.read_text(encoding="utf-8") if card_path.is_file() else None,
        "loinc_mapping": (state.loinc.get(name) or {}).get("mapping"),
    }
    if not files:
        detail.update(
            input_schema=model.input_schema,
            classes=list(model.schema.classes),
            positive_label=model.schema.positive_label,
            threshold=model.threshold,
        )
    else:
        classes = getattr(model, "class_names", None) or getattr(model, "classes", None)
        spec = getattr(model, "input_schema", None)
        detail.update(
            classes=[str(c) for c in classes] if classes else None,
            threshold=getattr(model, "threshold", None),
            file_input=spec if isinstance(spec, dict) else None,
        )
    return detail


@router.get("/models/{name}", response_model=ModelDetail, summary="One model: versions, inputs, metrics, card")
async def get_model(name: str, request: Request) -> dict:
    audit_box(request)["model"] = name
    return await run_in_threadpool(_detail, request.app.state.medai, name)
