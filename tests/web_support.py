"""Shared helpers of the web page's tests (no tests here): an app with one key per role, signing in."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ROLES = ("viewer", "clinician", "admin")
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@dataclass
class WebApp:
    app: Any
    http: Any
    keys: dict[str, str]
    key_ids: dict[str, str] = field(default_factory=dict)

    @property
    def state(self):
        return self.app.state.medai

    def sign_in(self, role: str, http=None) -> str:
        """Sign ``http`` (default the shared client) in as ``role``; the session's CSRF token."""
        http = http or self.http
        page = http.get("/sign-in")
        form = {"csrf_token": csrf_of(page.text), "api_key": self.keys[role], "next": "/models"}
        r = http.post("/sign-in", data=form, follow_redirects=False)
        assert r.status_code == 303, r.text
        return csrf_of(http.get("/models").text)

    def client(self):
        from fastapi.testclient import TestClient

        return TestClient(self.app, raise_server_exceptions=False)

    def audit(self) -> list[dict[str, Any]]:
        self.state.audit_sink.flush(timeout=10)
        return list(self.state.audit.export())


def start_web(register: dict[str, Any] | None = None, settings=None):
    """(TestClient, app) with ``register`` ({name: artifact dir}) in the registry."""
    from fastapi.testclient import TestClient

    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    for name, path in (register or {}).items():
        Registry().register(path, name=name)
    app = create_app(settings or Settings(job_poll_s=0.05, rate_limit=100_000))
    return TestClient(app, raise_server_exceptions=False), app


def make_keys(app) -> tuple[dict[str, str], dict[str, str]]:
    keys, ids = {}, {}
    for role in ROLES:
        record, key = app.state.medai.keys.create(f"Test {role}", role)
        keys[role], ids[role] = key, record.key_id
    return keys, ids
