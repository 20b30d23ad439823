"""Named datasets: where each comes from, under which licence, and how to load it.

A dataset's files are found, in order: under ``MEDAI_DATA_DIR`` (a local copy, the ``../shared/data``
layout), in the user cache (a previous download), or downloaded once from its public URL. Every file
with a known sha256 is checked before use; a mismatch is an :class:`~medai.errors.IntegrityError`.
Datasets that ship inside an installed package (scikit-learn's breast cancer, ...) need no file.
"""

from __future__ import annotations

import importlib.util
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medai import config
from medai.errors import IntegrityError, MedAIError, NotFoundError
from medai.fsutil import atomic_write_bytes, sha256_file


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its path relative to ``MEDAI_DATA_DIR``, checksum and public URL."""

    relative_path: str
    sha256: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    modality: str
    license: str
    citation: str
    loader: Callable[[DatasetSpec], Any]
    files: tuple[DataFile, ...] = ()
    package: str | None = None  # set when the data ships inside this importable package
    extra: dict[str, Any] = field(default_factory=dict)

    # -- locating files ---------------------------------------------------------------------------
    def _local(self, item: DataFile) -> Path | None:
        base = config.data_dir()
        if base is not None and (base / item.relative_path).is_file():
            return base / item.relative_path
        cached = config.cache_dir() / "datasets" / item.relative_path
        return cached if cached.is_file() else None

    def availability(self) -> str:
        """``'package'``, ``'local'``, ``'downloadable'`` or ``'missing'``."""
        if self.package is not None:
            return "package" if importlib.util.find_spec(self.package) else "missing"
        if all(self._local(item) for item in self.files):
            return "local"
        if all(self._local(item) or item.url for item in self.files):
            return "downloadable"
        return "missing"

    def path(self, relative_path: str | None = None) -> Path:
        """Verified local path of one of this dataset's files (the first when not named)."""
        items = [f for f in self.files if relative_path in (None, f.relative_path)]
        if not items:
            raise NotFoundError(f"dataset {self.name!r} has no file {relative_path!r}")
        item = items[0]
        path = self._local(item)
        if path is None:
            if not item.url:
                where = config.data_dir()
                raise NotFoundError(
                    f"dataset {self.name!r} needs {item.relative_path} under MEDAI_DATA_DIR "
                    f"({where or 'not set'}); it has no public download address"
                )
            path = _download(item, config.cache_dir() / "datasets" / item.relative_path)
        if item.sha256 is not None:
            actual = sha256_file(path)
            if actual != item.sha256:
                raise IntegrityError(
                    f"dataset {self.name!r}: {path} has sha256 {actual[:12]}..., expected {item.sha256[:12]}..."
                )
        return path

    def load(self) -> Any:
        if self.availability() == "missing":
            if self.package is not None:
                raise NotFoundError(f"dataset {self.name!r} needs the package {self.package!r} installed")
            self.path()  # raises with the precise reason
        return self.loader(self)


def _download(item: DataFile, target: Path) -> Path:
    try:
        with urllib.request.urlopen(item.url, timeout=60) as response:  # noqa: S310 (https URLs from the catalog)
            data = response.read()
    except OSError as exc:
        raise MedAIError(f"could not download {item.url}: {exc}") from exc
    atomic_write_bytes(target, data)
    return target


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_catalog() -> None:
    import medai.data.catalog  # noqa: F401  (registers the built-in datasets)


def get_dataset(name: str) -> DatasetSpec:
    _ensure_catalog()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise NotFoundError(f"unknown dataset {name!r}; known datasets: {known}") from None


def list_datasets() -> list[DatasetSpec]:
    _ensure_catalog()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
