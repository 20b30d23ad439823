"""Administration (permission ``admin``): register/promote/retire model versions, LOINC mappings, API keys,
the audit log."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from medai.errors import IntegrityError, MedAIError
from medai.serving.routers.models import summary
from medai.serving.schemas import (
    AuditPage,
    AuditVerify,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    LoincMapping,
    ModelSummary,
    RegisterRequest,
    StageRequest,
)
from medai.serving.security import audit_box, require

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require("admin"))])


def key_json(record) -> dict:
    iso = lambda v: v.isoformat() if v else None  # noqa: E731
    return {
        "key_id": record.key_id,
        "name": record.name,
        "role": record.role,
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "revoked_at": iso(record.revoked_at),
        "last_used_at": iso(record.last_used_at),
    }


@router.post("/models", response_model=ModelSummary, status_code=201, summary="Register an artifact directory")
def register_model(body: RegisterRequest, request: Request) -> dict:
    state = request.app.state.medai
    try:
        record = state.registry.register(body.artifact_dir, name=body.name, description=body.description)
    except IntegrityError as exc:  # the artifact offered for registration is bad: the caller's input (422)
        raise MedAIError(f"cannot register: {str(exc).replace(body.artifact_dir, 'artifact_dir')}") from None
    box = audit_box(request)
    box["model"], box["model_version"] = record.name, record.version
    state.forget(record.name)
    return summary(record)


@router.put(
    "/models/{name}/versions/{version}/stage",
    response_model=ModelSummary,
    summary="Set a version's stage (promote to production, retire, ...)",
)
def set_stage(name: str, version: int, body: StageRequest, request: Request) -> dict:
    state = request.app.state.medai
    box = audit_box(request)
    box["model"], box["model_version"], box["detail"] = name, version, {"stage": body.stage}
    record = state.registry.set_stage(name, version, body.stage)
    state.forget(name)
    return summary(record)


@router.put("/models/{name}/loinc-mapping", response_model=LoincMapping, summary="Set a model's FHIR mapping")
def set_loinc_mapping(name: str, body: LoincMapping, request: Request) -> dict:
    from medai.serving.fhir import check_mapping, check_risk_model

    state = request.app.state.medai
    audit_box(request)["model"] = name
    record = state.registry.get(name)
    model = state.load_model(record)
    check_risk_model(model, name)
    data = body.model_dump()
    check_mapping(data, model.input_fields)
    return state.loinc.set(name, data)


@router.post("/keys", response_model=KeyCreated, status_code=201, summary="Create an API key (shown once)")
def create_key(body: KeyCreate, request: Request) -> dict:
    record, key = request.app.state.medai.keys.create(body.name, body.role, body.expires_days)
    audit_box(request)["detail"] = {"created_key_id": record.key_id, "created_role": record.role}
    return dict(key_json(record), key=key)


@router.get("/keys", response_model=KeyList, summary="List API keys (never their secrets)")
def list_keys(request: Request) -> dict:
    return {"keys": [key_json(r) for r in request.app.state.medai.keys.list()]}


@router.delete("/keys/{key_id}", response_model=KeyInfo, summary="Revoke an API key")
def revoke_key(key_id: str, request: Request) -> dict:
    audit_box(request)["detail"] = {"revoked_key_id": key_id}
    return key_json(request.app.state.medai.keys.revoke(key_id))


@router.get("/audit", response_model=AuditPage, summary="Read the audit log")
async def read_audit(
    request: Request,
    since: datetime | None = None,
    until: datetime | None = Query(None, description="rows before this time"),
    limit: int = Query(1000, ge=1, le=10_000),
    key_id: str | None = Query(None, max_length=32, description="only this key's rows"),
    action: str | None = Query(None, max_length=64, description="only this action (e.g. predict, web_sign_in)"),
    outcome: str | None = Query(None, max_length=32, description="ok, denied, or error (any error:NNN)"),
    model: str | None = Query(None, max_length=200),
    order: Literal["oldest", "newest"] = Query("oldest", description="oldest rows first, or the newest first"),
) -> dict:
    state = request.app.state.medai
    await run_in_threadpool(state.audit_sink.flush, 10)
    end = until.astimezone(UTC) if until is not None and until.tzinfo else (
        until.replace(tzinfo=UTC) if until is not None else None)

    def wanted(row: dict) -> bool:
        if key_id and row.get("key_id") != key_id:
            return False
        if action and row.get("action") != action:
            return False
        if outcome and not (row.get("outcome") == outcome or (outcome == "error"
                                                              and str(row.get("outcome")).startswith("error"))):
            return False
        if model and row.get("model") != model:
            return False
        return not (end is not None and datetime.fromisoformat(row["ts"]) >= end)

    def rows() -> list[dict]:
        if order == "newest":  # the whole log is read once; only the last `limit` matches are kept
            kept: deque[dict] = deque(maxlen=limit)
            for row in state.audit.export(since=since):
                if wanted(row):
                    kept.append(row)
            return list(reversed(kept))
        out = []
        for row in state.audit.export(since=since):
            if wanted(row):
                out.append(row)
                if len(out) >= limit:
                    break
        return out

    return {"records": await run_in_threadpool(rows)}


@router.get("/audit/verify", response_model=AuditVerify, summary="Check the audit log's hash chain")
async def verify_audit(request: Request) -> dict:
    state = request.app.state.medai
    await run_in_threadpool(state.audit_sink.flush, 10)
    result = await run_in_threadpool(state.audit.verify)
    return {
        "ok": result.ok,
        "checked": result.checked,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
    }
