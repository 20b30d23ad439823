"""The MedAI web page for clinicians and model owners, served at ``/`` by the same app as the API.

Server-rendered pages (Jinja2) over the ``/v1`` API: every page action is an in-process API call as the
signed-in key (:mod:`medai.web.api`), so the page has exactly the API's roles, validation and audit trail.
Sign-in exchanges an API key for a server-side session (:mod:`medai.web.sessions`); every form carries a
CSRF token; every answer has a strict CSP and no outside asset (:mod:`medai.web.security`).
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

__all__ = ["install"]


def _env_bool(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if not value or value == "auto":
        return None
    return value in ("1", "true", "yes", "on")


def install(app: FastAPI, settings) -> None:
    """Add the page's routes, static assets, error pages and session store to ``app``."""
    from medai.web import pages_admin, pages_jobs, pages_models, pages_predict
    from medai.web.context import HERE, PageRefused, WebState, refused_page
    from medai.web.sessions import SessionStore

    app.state.medai_web = WebState(
        sessions=SessionStore(settings.database_url, idle_s=settings.web_idle_s, absolute_s=settings.web_absolute_s),
        secure_cookies=settings.web_secure_cookies,
        max_upload_bytes=settings.max_body_bytes,
    )
    for module in (pages_models, pages_predict, pages_jobs, pages_admin):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_exception_handler(PageRefused, refused_page)


def secure_cookies_from_env() -> bool | None:
    return _env_bool("MEDAI_WEB_SECURE_COOKIES")
