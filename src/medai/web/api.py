"""The page's only way to the service: an in-process call of the ``/v1`` API as the signed-in key.

Each call runs the same ASGI application a program talks to — body limit, audit, authentication and the
role check, rate limit, the route itself and its error handling — with the session's verified key placed
in the request scope instead of an ``Authorization`` header (no plaintext key exists after sign-in). So a
page action is exactly an API action: the same permission, the same validation, the same audit row (its
``detail`` marked ``via: web``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.types import Message

from medai.serving.keys import KeyRecord

__all__ = ["ApiResult", "call_api"]


@dataclass
class ApiResult:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status < 400

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def detail(self) -> str:
        """The service's one-line message of an error answer (its ``detail``)."""
        try:
            return str(self.json().get("detail", ""))
        except (ValueError, AttributeError):
            return f"the service answered {self.status}"

    @property
    def field_errors(self) -> list[dict[str, Any]]:
        try:
            return list(self.json().get("errors") or [])
        except (ValueError, AttributeError):
            return []


async def call_api(
    request: Request,
    key: KeyRecord,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    content_type: str | None = None,
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
    data: dict[str, str] | None = None,
) -> ApiResult:
    """``method path`` on this app's API as ``key``; the answer's status, body and headers."""
    if not path.startswith("/v1/"):
        raise ValueError(f"not an API path: {path}")
    params = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
    built = httpx.Request(
        method, "http://medai.internal" + path, params=params, json=json_body, content=content, files=files, data=data
    )
    body = built.read()
    headers = [(b"content-length", str(len(body)).encode())]
    ctype = content_type or built.headers.get("content-type")
    if ctype:
        headers.append((b"content-type", ctype.encode("latin-1")))
    outer = request.scope
    scope = {
        "type": "http",
        "asgi": outer.get("asgi", {"version": "3.0"}),
        "http_version": "1.1",
        "method": method,
        "scheme": outer.get("scheme", "http"),
        "server": outer.get("server"),
        "client": outer.get("client"),
        "root_path": "",
        "path": built.url.path,
        "raw_path": built.url.raw_path.split(b"?")[0],
        "query_string": built.url.query,
        "headers": headers,
        "state": dict(outer.get("state") or {}),
        "medai.key": key,  # the session's verified key: authenticate() takes it instead of a header
        "medai.via": "web",
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # the caller never goes away mid-answer: a streaming response that listens for a disconnect waits
        # here (and is cancelled once it has sent everything), instead of being told the client left
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    status, out_headers, chunks = 500, {}, []

    async def send(message: Message) -> None:
        nonlocal status, out_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await request.app(scope, receive, send)
    return ApiResult(status, b"".join(chunks), out_headers)
