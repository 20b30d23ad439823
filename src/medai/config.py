"""Where MedAI keeps things, read from the environment in one place.

- ``MEDAI_HOME``: state (registry database, stored model artifacts, caches); default ``~/.medai``.
- ``MEDAI_DATABASE_URL``: the registry database; default a SQLite file in ``MEDAI_HOME``.
- ``MEDAI_DATA_DIR``: a local folder holding the real data sets (``../shared/data`` layout).
"""

from __future__ import annotations

import os
import secrets
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


def secret_file(name: str) -> bytes:
    """The installation's secret ``MEDAI_HOME/<name>``: 32 random bytes made once, readable by the owner only;
    several processes starting together agree on one (atomic create-if-absent through a hard link)."""
    path = home() / name
    if not path.exists():
        tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    data = path.read_bytes()
    if len(data) < 16:
        from medai.errors import MedAIError

        raise MedAIError(f"{path}: the secret is too short (under 16 bytes); delete it to make a new one")
    return data
