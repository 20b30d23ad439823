"""Crash-safe file writes and checksums.

Directories are written into a sibling staging directory and renamed into place (:func:`publish_directory`).
Staging and backup directories carry the writer's process id (``.<name>.staging-<pid>-<random>``,
``.<name>.old-<pid>-<random>``), so that :func:`clean_stale_siblings` can tell the leftovers of a writer
that died (SIGKILL, power loss) from the work of one still running, remove them, and put back an artifact
whose replacement was interrupted between its two renames.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

STALE_AFTER_S = 24 * 3600.0
"""A staging directory older than this is removed even when its pid is alive (the pid was reused)."""

_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|old)-(?P<pid>\d+)(?:-|$)")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_tree(root: Path) -> None:
    for item in sorted(root.rglob("*")):
        if item.is_file():
            with open(item, "rb+") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(root)


def publish_directory(staging: Path, target: Path) -> None:
    """Move a fully written ``staging`` directory to ``target`` atomically.

    An existing ``target`` is replaced only after the new one is complete: it is first renamed aside,
    then removed, so a crash leaves either the old or the new directory in place.
    """
    fsync_tree(staging)
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(target, backup)
    try:
        os.replace(staging, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    _fsync_dir(target.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def staging_dir_for(target: Path) -> Path:
    """A new, empty staging directory beside ``target``, named with this process's id."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-{os.getpid()}-"))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_gone(pid: int, path: Path, now: float | None = None) -> bool:
    """Whether the writer of ``path`` (process ``pid``) is gone: dead, or ``path`` is older than
    :data:`STALE_AFTER_S` (pid reused)."""
    if not pid_alive(pid):
        return True
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_S


def clean_stale_siblings(parent: Path, name: str | None = None) -> dict[str, int]:
    """Remove the staging and backup directories in ``parent`` (for ``name`` only, when given) left by
    writers that died, and restore an artifact whose replacement died between its two renames (the backup
    is renamed back when the target is missing). Returns counts: ``staging``, ``backups``, ``restored``."""
    counts = {"staging": 0, "backups": 0, "restored": 0}
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return counts
    for entry in entries:
        match = _SIBLING.match(entry.name)
        if match is None or (name is not None and match["name"] != name):
            continue
        if not writer_gone(int(match["pid"]), entry):
            continue
        if match["kind"] == "old":
            target = entry.with_name(match["name"])
            if not target.exists():
                try:
                    os.replace(entry, target)
                    counts["restored"] += 1
                    continue
                except OSError:
                    pass
            counts["backups"] += 1
        else:
            counts["staging"] += 1
        shutil.rmtree(entry, ignore_errors=True)
    if any(counts.values()):
        _fsync_dir(Path(parent))
    return counts
