# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""The short version of benchmarks/crash_safety.py: SIGKILL during registration, artifact writes, job execution
and audit appends, a few times each; nothing stored is lost, corrupted or left half-written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_service_support import wdbc_artifact  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytestmark = pytest.mark.slow


def test_sigkill_loses_and_corrupts_nothing(tmp_path, wdbc_artifact):
    from crash_safety import problems, run

    results = run(["register", "artifact", "job", "audit"], kills=3, serve_kills=0, seed=1, workdir=tmp_path,
                  light_jobs=True, artifact=wdbc_artifact)
    assert not problems(results), results
    assert results["register"]["orphans_after_cleanup"] == 0 and results["register"]["versions_registered"] > 0
    assert results["job"]["done"] == results["job"]["jobs"]
    assert results["audit"]["rows_acknowledged"] > 0 and results["audit"]["acknowledged_rows_missing"] == 0
