"""The page's protections: security headers on every page answer, CSRF and origin checks on every form.

Headers (every answer outside ``/v1``): a strict Content-Security-Policy — scripts, styles, fonts and
fetches from MedAI itself only, no inline script or style, images from MedAI or ``data:`` (Grad-CAM
overlays), forms posting only to MedAI, no framing — plus ``X-Frame-Options: DENY``, ``nosniff``, no
referrer, same-origin opener/resource policies, no camera/microphone/geolocation, and ``no-store`` on
pages (they may show patient values). A route may set a stricter CSP of its own (the model report).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medai.serving.routers.models import REPORT_CSP  # the report page is shown with the API's sandbox CSP

__all__ = ["CSP", "REPORT_CSP", "SecurityHeadersMiddleware", "is_page_path"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


API_PATHS = ("/health", "/metrics")  # the API's own routes outside /v1


def is_page_path(path: str) -> bool:
    """Whether ``path`` belongs to the web page (everything but the API, its health check and metrics)."""
    return not (path == "/v1" or path.startswith("/v1/") or path in API_PATHS)


class SecurityHeadersMiddleware:
    """Adds the page's security headers to every answer outside ``/v1`` (see the module docs)."""

    def __init__(self, app: ASGIApp, tls: bool | None = None) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        secure = self.tls if self.tls is not None else scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = dict(_HEADERS)
                extra["content-security-policy"] = CSP
                extra["cache-control"] = "private, max-age=3600" if static else "no-store"
                if secure:
                    extra["strict-transport-security"] = "max-age=31536000"
                for name, value in extra.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
