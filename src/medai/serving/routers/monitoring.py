"""Monitoring routes: outcomes that arrive late (``POST /v1/models/{name}/outcomes``, permission ``predict``), the
monitoring report with plots (``GET /v1/models/{name}/monitoring``, ``models:read``), a model's thresholds
(``PUT /v1/admin/models/{name}/monitoring``, ``admin``) and Prometheus metrics (``GET /metrics``, ``models:read``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from medai.errors import MedAIError
from medai.serving.routers.common import FieldErrors
from medai.serving.security import audit_box, require

router = APIRouter(tags=["monitoring"], dependencies=[Depends(require("predict"))])
read_router = APIRouter(tags=["monitoring"], dependencies=[Depends(require("models:read"))])
admin_router = APIRouter(tags=["monitoring"], dependencies=[Depends(require("admin"))])
metrics_router = APIRouter(tags=["monitoring"], dependencies=[Depends(require("models:read"))])

Scalar = float | int | str | bool | None


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_id: str = Field(min_length=1, max_length=200, description="the id sent with the prediction (record_ids)")
    outcome: Scalar = Field(description="the observed label or value, as in the training target")


class OutcomesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcomes: list[Outcome] = Field(min_length=1, max_length=100_000)


class OutcomesResponse(BaseModel):
    received: int
    distinct: int
    matched: int = Field(description="outcomes joined to a stored prediction of this model")
    unmatched: int


class MonitorSettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: int | None = Field(None, ge=1, le=1_000_000)
    step: int | None = Field(None, ge=1, le=1_000_000)
    min_window: int | None = Field(None, ge=1, le=1_000_000)
    fdr: float | None = Field(None, gt=0, lt=1)
    psi_min: float | None = Field(None, ge=0, le=100)
    outcome_window: int | None = Field(None, ge=1, le=1_000_000)
    min_outcomes: int | None = Field(None, ge=1, le=1_000_000)
    floors: dict[str, float] | None = None
    webhook: str | None = Field(None, max_length=2000, pattern=r"^https?://")
    history: int | None = Field(None, ge=1, le=1000)


def check_outcomes(model, outcomes: list[Outcome]) -> None:
    """Every outcome must be a value of the model's target (a known class, a number for regression); 422 naming
    the outcomes that are not."""
    import numpy as np

    values = np.asarray([o.outcome for o in outcomes], dtype=object)
    try:
        model.target.encode(values, "the outcomes")
        return
    except MedAIError:
        pass
    errors = []
    for i, value in enumerate(values):
        try:
            model.target.encode(np.asarray([value], dtype=object), "the outcome")
        except MedAIError as exc:
            errors.append({"loc": ["body", "outcomes", i, "outcome"], "msg": str(exc), "type": "value_error"})
            if len(errors) >= 20:
                break
    raise FieldErrors(errors)


@router.post("/models/{name}/outcomes", response_model=OutcomesResponse,
             summary="Outcomes that arrived after the prediction, joined to it by record id")
async def post_outcomes(name: str, body: OutcomesRequest, request: Request) -> dict:
    state = request.app.state.medai
    box = audit_box(request)
    box["action"], box["model"] = "outcomes", name
    record = state.record(name, None)
    model = state._models.get((record.name, record.version)) or await run_in_threadpool(state.load_model, record)
    check_outcomes(model, body.outcomes)
    counts = await run_in_threadpool(state.monitor_store.add_outcomes, name,
                                     [(o.record_id, o.outcome) for o in body.outcomes])
    if state.recorder is not None:
        state.recorder.mark(name, record.version, model)
    box["detail"] = {"outcomes": counts["received"], "matched": counts["matched"]}
    return counts


def report(state, name: str, version: int | None, plots: bool) -> dict[str, Any]:
    from medai.monitoring.analysis import analyse
    from medai.monitoring.plots import report_plots
    from medai.monitoring.recorder import notify

    record = state.record(name, version)
    model = state.load_model(record)
    if state.recorder is not None:
        state.recorder.flush(timeout=10)
    result = analyse(state.monitor_store, record.name, record.version, model)
    if result["new_alerts"]:
        notify(result["new_alerts"], result["settings"].get("webhook"))
    if state.metrics is not None:
        state.metrics.update_drift(record.name, record.version, result)
    if plots:
        result["plots"] = report_plots(result)
    return result


@read_router.get("/models/{name}/monitoring", summary="Drift, performance over time and alerts (JSON + plots)")
async def get_monitoring(name: str, request: Request, version: int | None = Query(None, ge=1, le=2**62),
                         plots: bool = True) -> dict:
    box = audit_box(request)
    box["action"], box["model"] = "monitoring", name
    if version is not None:
        box["model_version"] = version
    return await run_in_threadpool(report, request.app.state.medai, name, version, plots)


@admin_router.put("/admin/models/{name}/monitoring", summary="Set a model's monitoring thresholds and windows")
async def put_monitoring(name: str, body: MonitorSettingsBody, request: Request) -> dict:
    from medai.monitoring.store import MonitorSettings

    state = request.app.state.medai
    audit_box(request)["model"] = name
    state.registry.get(name)  # 404 for an unknown model
    current = state.monitor_store.settings(name).to_json()
    current.update(body.model_dump(exclude_unset=True))
    settings = MonitorSettings.from_json(current)
    await run_in_threadpool(state.monitor_store.put_settings, name, settings)
    return settings.to_json()


@metrics_router.get("/metrics", summary="Prometheus metrics (exposition format)",
                    response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    state = request.app.state.medai
    if state.metrics is None:
        raise MedAIError("metrics need the monitor extra: pip install 'medai[monitor]'")
    body, ctype = state.metrics.exposition()
    return Response(body, media_type=ctype)
