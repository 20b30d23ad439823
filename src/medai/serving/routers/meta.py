"""The OpenAPI document, for any valid key (interactive docs are off: nothing answers without a key)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from medai.serving.security import require

router = APIRouter(tags=["meta"], dependencies=[Depends(require("models:read"))])


@router.get("/openapi.json", summary="The OpenAPI document of this service", include_in_schema=False)
async def openapi(request: Request) -> dict:
    return request.app.openapi()
