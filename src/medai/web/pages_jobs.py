"""Jobs: upload a CSV (models that take records) or a zip of images/DICOM, watch its progress, download the
result — through the API's ``/v1/jobs`` (a key sees its own jobs; an admin everyone's)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from medai.web.context import PageRefused, SignedIn, form_of, render, signed_in, web_state
from medai.web.pages_models import api_error

router = APIRouter(include_in_schema=False)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
STEPS = {"queued": 1, "running": 2, "done": 3, "failed": 3}


def _job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise PageRefused(404, f"no job with id {job_id[:40]!r}", "not_found")
    return job_id


async def _jobs_page(request: Request, user: SignedIn, *, error: str | None = None, chosen: str | None = None,
                     status: int = 200) -> HTMLResponse:
    user.require("jobs")
    models = await user.api(request, "GET", "/v1/models", params={"latest_only": "true"})
    jobs = await user.api(request, "GET", "/v1/jobs")
    for result in (models, jobs):
        if not result.ok:
            raise api_error(result)
    names = sorted({m["name"] for m in models.json()["models"] if m["stage"] != "retired"})
    return render(request, "jobs.html", {
        "title": "Jobs", "models": names, "jobs": jobs.json()["jobs"], "error": error, "chosen": chosen,
        "max_bytes": web_state(request).max_upload_bytes, "can_explain": user.can("explain"),
    }, status=status)


@router.get("/jobs")
async def jobs_page(request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    return await _jobs_page(request, user)


@router.post("/jobs")
async def submit_job(request: Request, user: SignedIn = Depends(signed_in)):
    form = await form_of(request, user, max_files=1)
    user.require("jobs")
    name = str(form.get("model") or "")
    upload = form.get("file")
    if not hasattr(upload, "read") or not (upload.filename or upload.size):
        return await _jobs_page(request, user, error="Choose a CSV or a zip file first.", chosen=name, status=422)
    data: dict[str, Any] = {"model": name}
    if form.get("explain") and user.can("explain"):
        data["explain"] = "true"
    content = await upload.read()
    result = await user.api(request, "POST", "/v1/jobs", data=data,
                            files=[("file", (upload.filename or "upload", content,
                                             upload.content_type or "application/octet-stream"))])
    if not result.ok:
        return await _jobs_page(request, user, error=result.detail, chosen=name, status=result.status)
    return RedirectResponse(f"/jobs/{result.json()['id']}", status_code=303)


@router.get("/jobs/{job_id}")
async def job_page(job_id: str, request: Request, user: SignedIn = Depends(signed_in)) -> HTMLResponse:
    user.require("jobs")
    result = await user.api(request, "GET", f"/v1/jobs/{_job_id(job_id)}")
    if not result.ok:
        raise api_error(result)
    job = result.json()
    return render(request, "job.html", {"title": f"Job {job_id[:8]}", "job": job, "step": STEPS[job["status"]]})


@router.get("/jobs/{job_id}/status")
async def job_status(job_id: str, request: Request, user: SignedIn = Depends(signed_in)) -> JSONResponse:
    """The job's state for the page's progress poll (JSON, same origin, signed in)."""
    user.require("jobs")
    result = await user.api(request, "GET", f"/v1/jobs/{_job_id(job_id)}")
    if not result.ok:
        return JSONResponse({"detail": result.detail}, status_code=result.status)
    job = result.json()
    return JSONResponse({k: job.get(k) for k in ("id", "status", "items", "error", "finished_at")})


@router.get("/jobs/{job_id}/result")
async def job_result(job_id: str, request: Request, user: SignedIn = Depends(signed_in)) -> Response:
    user.require("jobs")
    result = await user.api(request, "GET", f"/v1/jobs/{_job_id(job_id)}/result")
    if not result.ok:
        raise api_error(result)
    return Response(result.body, media_type="text/csv",
                    headers={"content-disposition": f'attachment; filename="medai-job-{job_id}.csv"'})
