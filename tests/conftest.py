"""Test environment: isolated MEDAI_HOME per test, offline flags, real data through MEDAI_DATA_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["db_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a token written by a first ray.init would lock clients out
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
if "MEDAI_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["MEDAI_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture(autouse=True)
def medai_home(tmp_path, monkeypatch):
    """Every test gets its own MEDAI_HOME and SQLite registry, so tests never share state."""
    home = tmp_path / "medai_home"
    monkeypatch.setenv("MEDAI_HOME", str(home))
    monkeypatch.delenv("MEDAI_DATABASE_URL", raising=False)
    yield home
    from medai import db

    db.dispose_all()


def require_data(relative: str) -> Path:
    """Path of a real data file under MEDAI_DATA_DIR; fails (never skips) in CI when it is missing."""
    base = os.environ.get("MEDAI_DATA_DIR")
    path = Path(base) / relative if base else None
    if path is None or not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"real data {relative} is missing under MEDAI_DATA_DIR={base!r}")
        pytest.skip(f"real data {relative} not available (set MEDAI_DATA_DIR)")
    return path
