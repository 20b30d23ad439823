"""The model registry: versioned, immutable copies of artifacts with their checksums in a database.

Registering copies the artifact into ``MEDAI_HOME/models/<name>/v<version>-<random>`` (written atomically) and
records its manifest; loading re-verifies every file against both the artifact's manifest and the
registry's copy of it. A failed registration removes its own copy and leaves earlier versions untouched.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from medai import config, db
from medai.errors import MedAIError, NotFoundError
from medai.fsutil import clean_stale_siblings, publish_directory, staging_dir_for, writer_gone
from medai.models.artifact import MANIFEST, read_model_json, verify_artifact
from medai.registry.tables import STAGES, ModelVersionRow

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSION_DIR = re.compile(r"^v\d+-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")
MAX_VERSION = 2**31 - 1  # the version column is a 32-bit integer


def _check_version(name: str, version: int | None) -> None:
    """A version no model can have (below 1, past 32 bits) is simply not there — checked before it reaches
    the database, where a number past 64 bits overflowed the driver."""
    if version is not None and not (isinstance(version, int) and 1 <= version <= MAX_VERSION):
        raise NotFoundError(f"model {name[:100]!r} has no version {str(version)[:24]}")


@dataclass(frozen=True)
class ModelRecord:
    name: str
    version: int
    task: str
    kind: str
    modality: str
    family: str
    learner: str
    stage: str
    metrics: dict[str, Any]
    artifact_path: str
    manifest: dict[str, str]
    data_fingerprint: str
    created_at: datetime
    description: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def headline(self) -> dict[str, float | None]:
        """The point estimates of the test metrics."""
        test = self.metrics.get("test", {})
        return {k: v.get("value") for k, v in test.items() if isinstance(v, dict)}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "task": self.task, "kind": self.kind,
            "modality": self.modality, "family": self.family, "learner": self.learner, "stage": self.stage,
            "metrics": self.metrics, "artifact_path": self.artifact_path,
            "data_fingerprint": self.data_fingerprint, "created_at": self.created_at.isoformat(),
            "description": self.description,
        }


def _record(row: ModelVersionRow) -> ModelRecord:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return ModelRecord(
        name=row.name, version=row.version, task=row.task, kind=row.kind, modality=row.modality,
        family=row.family, learner=row.learner, stage=row.stage, metrics=row.metrics,
        artifact_path=row.artifact_path, manifest=row.manifest, data_fingerprint=row.data_fingerprint,
        created_at=created, description=row.description,
    )


def _source_artifact(artifact_dir: str | Path) -> Path:
    """The directory to register, or a :class:`MedAIError` saying why it is not an artifact (an empty path,
    a missing folder, a folder without a manifest) — never the integrity failure of a stored model."""
    text = str(artifact_dir)
    if not text.strip():
        raise MedAIError("artifact directory: expected the path of a MedAI model artifact, got an empty string")
    path = Path(text)
    try:
        is_dir, has_manifest = path.is_dir(), (path / MANIFEST).is_file()
    except (OSError, ValueError):  # embedded NUL, name too long, no permission
        is_dir = has_manifest = False
    if not is_dir:
        raise NotFoundError(f"artifact directory {text[:200]!r} does not exist")
    if not has_manifest:
        raise MedAIError(f"{text[:200]!r} is not a MedAI model artifact directory (no {MANIFEST})")
    return path


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``'name'`` -> (name, None = latest); ``'name:3'`` -> (name, 3)."""
    name, sep, version = ref.partition(":")
    if not sep:
        return name, None
    if not version.isdigit():
        raise MedAIError(f"model reference {ref!r} must look like NAME or NAME:VERSION (a number)")
    return name, int(version)


class Registry:
    def __init__(self, url: str | None = None, store: Path | None = None):
        self.url = url
        self._sessions = db.session_factory(url)
        self.store = Path(store) if store else config.artifact_store()

    # -- writing -----------------------------------------------------------------------------------
    def register(self, artifact_dir: str | Path, name: str | None = None, description: str = "") -> ModelRecord:
        artifact_dir = _source_artifact(artifact_dir)
        manifest = verify_artifact(artifact_dir)
        meta = read_model_json(artifact_dir, verify=False)
        name = name or meta.get("name") or meta["task"]["name"]
        if not NAME_PATTERN.match(name):
            raise MedAIError(f"model name {name!r} must be 1-100 letters, digits, '.', '_' or '-'")
        metrics = meta.get("metrics", {})
        self.cleanup(name)
        for _attempt in range(5):
            with self._sessions() as session:
                latest = session.scalar(select(func.max(ModelVersionRow.version)).where(ModelVersionRow.name == name))
                version = (latest or 0) + 1
                # a unique directory per attempt: concurrent registrations never touch each other's files;
                # the pid in its name lets cleanup() tell a dead registration's leftovers from a live one
                target = self.store / name / f"v{version}-{os.getpid()}-{secrets.token_hex(4)}"
                staging = staging_dir_for(target)
                published = False
                try:
                    shutil.copytree(artifact_dir, staging, dirs_exist_ok=True)
                    verify_artifact(staging, manifest)
                    publish_directory(staging, target)
                    published = True
                    row = ModelVersionRow(
                        name=name, version=version, task=meta["task"]["name"], kind=meta["task"]["kind"],
                        modality=meta["task"]["modality"], family=meta["family"],
                        learner=meta.get("learner", ""), stage="none", metrics=metrics,
                        artifact_path=str(target), manifest=manifest,
                        data_fingerprint=meta.get("data", {}).get("fingerprint", ""),
                        created_at=datetime.now(UTC), description=description,
                    )
                    session.add(row)
                    session.commit()
                    return _record(row)
                except SQLIntegrityError:
                    session.rollback()  # another process took this version number: try the next one
                    if published:
                        shutil.rmtree(target, ignore_errors=True)
                except BaseException:
                    session.rollback()
                    shutil.rmtree(staging, ignore_errors=True)
                    if published:
                        shutil.rmtree(target, ignore_errors=True)
                    raise
        raise MedAIError(f"could not register {name!r}: too many concurrent registrations")

    def set_stage(self, name: str, version: int, stage: str) -> ModelRecord:
        if stage not in STAGES:
            raise MedAIError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
        with self._sessions() as session:
            row = self._row(session, name, version)
            if stage == "production":  # one production version per name
                for other in session.scalars(select(ModelVersionRow).where(
                        ModelVersionRow.name == name, ModelVersionRow.stage == "production")):
                    other.stage = "staging" if other.version != version else other.stage
            row.stage = stage
            session.commit()
            return _record(row)

    def cleanup(self, name: str | None = None) -> dict[str, int]:
        """Remove what registrations that died (SIGKILL, power loss) left in the store: staging directories,
        and published copies whose database row was never committed. Only leftovers of processes that are
        gone are touched (the pid is in each name), so a registration running in another worker is safe.
        ``name``: one model's folder only. Returns counts: ``staging``, ``unregistered``."""
        counts = {"staging": 0, "unregistered": 0}
        folders = [self.store / name] if name else [p for p in self.store.iterdir() if p.is_dir()]
        with self._sessions() as session:
            query = select(ModelVersionRow.artifact_path)
            if name:
                query = query.where(ModelVersionRow.name == name)
            referenced = {Path(p).resolve() for p in session.scalars(query)}
        for folder in folders:
            if not folder.is_dir():
                continue
            counts["staging"] += clean_stale_siblings(folder)["staging"]
            for entry in folder.iterdir():
                match = _VERSION_DIR.match(entry.name)
                if match is None or not entry.is_dir() or entry.resolve() in referenced:
                    continue
                pid = int(match["pid"]) if match["pid"] else 0  # older names carry no pid: age decides
                if writer_gone(pid, entry) if pid else time.time() - entry.stat().st_mtime > 3600:
                    shutil.rmtree(entry, ignore_errors=True)
                    counts["unregistered"] += 1
        return counts

    # -- reading -----------------------------------------------------------------------------------
    def _row(self, session, name: str, version: int | None) -> ModelVersionRow:
        _check_version(name, version)
        query = select(ModelVersionRow).where(ModelVersionRow.name == name)
        if version is None:
            row = session.scalars(
                query.where(ModelVersionRow.stage == "production").order_by(ModelVersionRow.version.desc())
            ).first() or session.scalars(
                query.where(ModelVersionRow.stage != "retired").order_by(ModelVersionRow.version.desc())
            ).first()
        else:
            row = session.scalars(query.where(ModelVersionRow.version == version)).first()
        if row is None:
            names = sorted(set(session.scalars(select(ModelVersionRow.name))))
            if version is None or name not in names:
                raise NotFoundError(f"no model named {name!r} in the registry; registered: {names or 'none'}")
            raise NotFoundError(f"model {name!r} has no version {version}")
        return row

    def get(self, name: str, version: int | None = None) -> ModelRecord:
        """A version, or the default one: the production version, else the newest not retired."""
        with self._sessions() as session:
            return _record(self._row(session, name, version))

    def resolve(self, ref: str) -> ModelRecord:
        return self.get(*parse_ref(ref))

    def versions(self, name: str) -> list[ModelRecord]:
        with self._sessions() as session:
            rows = session.scalars(select(ModelVersionRow).where(ModelVersionRow.name == name)
                                   .order_by(ModelVersionRow.version)).all()
            if not rows:
                raise NotFoundError(f"no model named {name!r} in the registry")
            return [_record(r) for r in rows]

    def list_models(self, latest_only: bool = False) -> list[ModelRecord]:
        with self._sessions() as session:
            rows = session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.name,
                                                                    ModelVersionRow.version)).all()
        records = [_record(r) for r in rows]
        if latest_only:
            latest: dict[str, ModelRecord] = {}
            for record in records:
                latest[record.name] = record
            records = list(latest.values())
        return records

    def load(self, name: str, version: int | None = None):
        """The loaded model, after checking every file against the registry's manifest."""
        from medai.road.model import load_model

        record = self.get(name, version)
        return load_model(record.artifact_path, expected_manifest=record.manifest)
