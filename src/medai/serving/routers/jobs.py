"""Batch jobs: ``POST /v1/jobs`` (multipart: ``model``, optional ``version``/``explain``, ``file`` = a CSV
for models that take records or a zip of images/DICOM for models that take files) -> 202 + job id;
``GET /v1/jobs/{id}``; ``GET /v1/jobs/{id}/result`` (CSV, the table ``medai predict`` writes).
Permission ``jobs``; a key sees its own jobs (admins see all).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from medai.errors import MedAIError, NotFoundError
from medai.fsutil import atomic_write_bytes
from medai.modalities import RECORDS
from medai.serving.jobs import FILE_CHUNK, frame_to_csv
from medai.serving.routers.common import UnsupportedMediaType, sha256_bytes, store_upload, store_zip
from medai.serving.routers.predict import load, resolve
from medai.serving.schemas import JobInfo, JobList
from medai.serving.security import audit_box, principal, require

router = APIRouter(tags=["jobs"], dependencies=[Depends(require("jobs"))])

_FORM_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "model": {"type": "string"},
                        "version": {"type": "integer"},
                        "explain": {"type": "boolean"},
                        "file": {"type": "string", "format": "binary"},
                    },
                    "required": ["model", "file"],
                }
            }
        },
    }
}


def _check_csv(data: bytes, model) -> int:
    from medai.data.tables import read_csv_strict

    try:
        frame = read_csv_strict(data, "the uploaded CSV")
    except MedAIError:
        raise
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
        raise MedAIError(f"the uploaded file is not a readable CSV table ({type(exc).__name__})") from None
    if len(frame) == 0:
        raise MedAIError("the uploaded CSV has no rows")
    missing = [c["name"] for c in model.input_fields if c["name"] not in frame.columns]
    if missing:
        raise MedAIError(f"the uploaded CSV is missing column(s) the model needs: {missing}")
    return len(frame)


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobInfo,
    openapi_extra=_FORM_DOC,
    summary="Submit a batch prediction job",
)
async def submit_job(request: Request) -> JSONResponse:
    state = request.app.state.medai
    box = audit_box(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise UnsupportedMediaType("send the job as multipart/form-data with fields 'model' and 'file'")
    body = await request.body()
    box["input_sha256"] = sha256_bytes(body)
    form = await request.form(max_files=1, max_fields=16)
    name = form.get("model")
    if not isinstance(name, str) or not name.strip():
        raise MedAIError("form field 'model': expected the name of a registered model")
    version_text = form.get("version")
    version = None
    if isinstance(version_text, str) and version_text.strip():
        if not version_text.strip().isdigit():
            raise MedAIError(f"form field 'version': expected a whole number, got {version_text!r}")
        version = int(version_text)
    explain = str(form.get("explain", "false")).lower() in ("1", "true", "yes")
    box["model"] = name
    upload = form.get("file")
    if upload is None or not hasattr(upload, "read"):
        raise MedAIError("form field 'file': expected a CSV (models that take records) or a zip of files")
    record = resolve(state, name, version)
    box["model_version"] = record.version
    model = await load(state, record)
    data = await upload.read()
    if not data:
        raise MedAIError("form field 'file': the uploaded file is empty")
    jobs = state.jobs
    job_id = jobs.new_id()
    folder = jobs.folder(job_id)
    try:
        if model.input_contract == RECORDS:
            if explain:
                principal(request).require("explain")
            items = await run_in_threadpool(_check_csv, data, model)
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / "input.csv", data)
            # every cell checked now, the way the job will read it: a bad table is a 422, not a failed job later
            await run_in_threadpool(model.modality.read_inputs, folder / "input.csv", model, False)
            kind = "csv"
        else:
            fname = (upload.filename or "").lower()
            if fname.endswith(".zip") or data[:4] == b"PK\x03\x04":
                paths = await run_in_threadpool(
                    store_zip, data, folder / "input", state.deid_secret, state.settings.max_body_bytes * 4
                )
            else:
                paths = [
                    await run_in_threadpool(
                        store_upload,
                        data,
                        upload.filename,
                        upload.content_type,
                        folder / "input",
                        0,
                        state.deid_secret,
                    )
                ]
            items, kind = len(paths), "files"
        info = await run_in_threadpool(
            jobs.create,
            job_id,
            record.name,
            record.version,
            kind,
            principal(request).key_id,
            box["input_sha256"],
            items,
            explain,
        )
    except BaseException:
        jobs.delete_files(job_id)
        raise
    box["detail"] = {"job": job_id, "items": items}
    if state.worker is not None:
        state.worker.wake()
    return JSONResponse(info, status_code=202)


@router.get("/jobs", response_model=JobList, summary="The newest jobs of this key (an admin's: everyone's)")
def list_jobs(request: Request, limit: int = Query(50, ge=1, le=500)) -> dict:
    key = principal(request)
    return {"jobs": request.app.state.medai.jobs.list(None if key.role == "admin" else key.key_id, limit)}


def _own(request: Request, job_id: str) -> None:
    state = request.app.state.medai
    key = principal(request)
    audit_box(request)["detail"] = {"job": job_id}
    owner = state.jobs.owner(job_id)
    if key.role != "admin" and owner != key.key_id:
        raise NotFoundError(f"no job with id {job_id!r}")


@router.get("/jobs/{job_id}", response_model=JobInfo, summary="A job's status")
def get_job(job_id: str, request: Request) -> dict:
    _own(request, job_id)
    return request.app.state.medai.jobs.get(job_id)


@router.get(
    "/jobs/{job_id}/result",
    summary="A finished job's predictions (CSV)",
    responses={200: {"content": {"text/csv": {}}}},
)
def job_result(job_id: str, request: Request) -> FileResponse:
    _own(request, job_id)
    path = request.app.state.medai.jobs.result_path(job_id)
    return FileResponse(path, media_type="text/csv", filename=f"medai-job-{job_id}.csv")


def run_job(state, row, folder: Path) -> bytes:
    """Run one job in the worker thread, under the job's budget (checked between chunks); the CSV bytes of
    its result (the same table as ``medai predict``). Files are read a chunk at a time, so memory does not
    grow with the number of files."""
    import pandas as pd

    from medai import budget
    from medai.data.dataset import Inputs

    record = state.registry.get(row.model, row.version)
    model = state.load_model(record)
    if row.kind == "csv":
        budget.check()
        inputs = model.modality.read_inputs(folder / "input.csv", model, labelled=False)
        ids = None if inputs.ids is None else [str(i) for i in inputs.ids]  # the table's id column: outcomes join it
        if ids is not None and any(not i.strip() or i == "nan" for i in ids):
            ids = None
        return frame_to_csv(model.frame(inputs, explain=bool(row.explain), observe=state.observer(record, model, ids)))
    paths = sorted((folder / "input").iterdir())
    parts = []
    for start in range(0, len(paths), FILE_CHUNK):
        budget.check()
        chunk = paths[start : start + FILE_CHUNK]
        inputs = Inputs(model.modality.inputs_from_files(chunk, model), [p.name for p in chunk], "item")
        parts.append(model.frame(inputs, explain=False, observe=state.observer(record, model)))
    return frame_to_csv(pd.concat(parts, ignore_index=True))
