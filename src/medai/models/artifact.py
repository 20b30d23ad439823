"""The model artifact: a directory with ``model.json``, weights that cannot run code on load, the
evaluation outputs, and ``manifest.json`` holding the sha256 of every other file.

Artifacts are written into a staging directory and renamed into place, so a crash never leaves half an
artifact. :func:`verify_artifact` recomputes every checksum and refuses a directory that does not match.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from medai.errors import IntegrityError, MedAIError, NotFoundError
from medai.fsutil import clean_stale_siblings, publish_directory, sha256_file, staging_dir_for

FORMAT = "medai-model/1"
MANIFEST = "manifest.json"
MODEL_JSON = "model.json"


def dumps(data: Any) -> bytes:
    """Canonical JSON (sorted keys, fixed separators): the same data always gives the same bytes."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def write_artifact(target: str | Path, files: dict[str, bytes]) -> dict[str, str]:
    """Write ``files`` (relative name -> bytes; must include model.json) as the artifact at ``target``.

    Returns the manifest (file name -> sha256). An existing artifact at ``target`` is replaced atomically.
    """
    target = Path(target)
    if MODEL_JSON not in files:
        raise ValueError("an artifact needs a model.json")
    if target.exists() and not target.is_dir():
        raise MedAIError(f"output path {target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).exists():
        raise MedAIError(f"output directory {target} is not empty and is not a MedAI artifact; choose another")
    clean_stale_siblings(target.parent, target.name)  # leftovers of an earlier writer that died
    staging = staging_dir_for(target)
    try:
        for name, data in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        manifest = {name: sha256_file(staging / name) for name in sorted(files)}
        (staging / MANIFEST).write_bytes(dumps({"format": FORMAT, "files": manifest}))
        publish_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_manifest(directory: str | Path) -> dict[str, str]:
    directory = Path(directory)
    if not directory.exists():  # a replacement that died between its two renames leaves the old one aside
        clean_stale_siblings(directory.parent, directory.name)
    if not directory.is_dir():
        raise NotFoundError(f"model directory {directory} does not exist")
    path = directory / MANIFEST
    if not path.is_file():
        raise IntegrityError(f"{directory} is not a MedAI model artifact (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
        return dict(data["files"])
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{path} is damaged: not a valid manifest") from None


def verify_artifact(directory: str | Path, expected: dict[str, str] | None = None) -> dict[str, str]:
    """Check every file against the manifest (and against ``expected``, e.g. the registry's copy)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if expected is not None and expected != manifest:
        changed = sorted(set(expected.items()) ^ set(manifest.items()))
        name = changed[0][0] if changed else MANIFEST
        raise IntegrityError(f"artifact {directory}: manifest does not match the registry's record ({name})")
    for name, digest in manifest.items():
        path = directory / name
        if not path.is_file():
            raise IntegrityError(f"artifact {directory}: file {name} is missing")
        if sha256_file(path) != digest:
            raise IntegrityError(f"artifact {directory}: checksum mismatch for {name}; the file was modified")
    return manifest


def read_model_json(directory: str | Path, verify: bool = True) -> dict[str, Any]:
    directory = Path(directory)
    if verify:
        verify_artifact(directory)
    try:
        return json.loads((directory / MODEL_JSON).read_text())
    except FileNotFoundError:
        raise NotFoundError(f"{directory} has no {MODEL_JSON}") from None
