"""Where MedAI keeps things, read from the environment in one place.

- ``MEDAI_HOME``: state (registry database, stored model artifacts, caches); default ``~/.medai``.
- ``MEDAI_DATABASE_URL``: the registry database; default a SQLite file in ``MEDAI_HOME``.
- ``MEDAI_DATA_DIR``: a local folder holding the real data sets (``../shared/data`` layout).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    path = Path(os.environ.get("MEDAI_HOME") or Path.home() / ".medai").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    return os.environ.get("MEDAI_DATABASE_URL") or f"sqlite:///{home() / 'medai.db'}"


def data_dir() -> Path | None:
    value = os.environ.get("MEDAI_DATA_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    path = home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact_store() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
