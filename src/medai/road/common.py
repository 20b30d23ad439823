"""Pieces the road shares: library versions, timestamps, progress bars."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from importlib import metadata

import medai

KEY_LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "shap", "skops", "torch", "monai")


def library_versions(names: tuple[str, ...] = KEY_LIBRARIES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def progress(iterable, total: int | None = None, desc: str = "", enabled: bool = True):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled or not sys.stderr.isatty(),
                file=sys.stderr, leave=False)


def medai_version() -> str:
    return medai.__version__
