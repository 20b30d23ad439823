# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""schemathesis against the live OpenAPI document with an admin key, every operation, a bounded number of
examples (the longer run is ``benchmarks/fuzz.py``): no 5xx, no answer that breaks the documented contract."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_service_support import service, wdbc_artifact  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytest.importorskip("schemathesis")


def test_fuzz_every_operation(service):
    from fuzz import fuzz

    headers = service.headers("admin")
    doc = service.http.get("/v1/openapi.json", headers=headers).json()
    stats = fuzz(doc, headers, max_examples=12, app=service.app, seed=0)
    assert stats["operations"] >= 17 and stats["examples"] >= 200
    assert stats["server_errors"] == 0, stats["failures"][:5]
    assert stats["schema_violations"] == 0, stats["failures"][:5]
    assert not stats["failures"], stats["failures"][:5]
    assert service.http.get("/health").status_code == 200
    from medai.privacy.audit import AuditLog

    assert AuditLog().verify().ok
