"""The registry of modalities: the CLI, the service, the registry and artifact loading find a modality here,
never by branching on its name.

Built-in modalities are the sub-packages of this package, imported on first use (a new one is a new folder,
nothing to edit here); an installed package can add one through the entry-point group ``medai.modalities``
(the entry point names a module that calls :func:`register_modality`). A modality's package must import
without its optional dependencies (torch, RDKit, ...): it imports them inside the methods that need them.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib import metadata
from pathlib import Path

from medai.errors import MedAIError, NotFoundError
from medai.modalities.base import FILES, RECORDS, CliOption, Modality

_MODALITIES: dict[str, Modality] = {}
_loaded = False


def register_modality(modality: Modality) -> Modality:
    """Make a modality known to every part of MedAI (call once, at import of its module)."""
    if not modality.name or not modality.name.replace("-", "").isalnum():
        raise ValueError(f"a modality needs a short name of letters, digits and '-', got {modality.name!r}")
    _MODALITIES[modality.name] = modality
    return modality


def unregister_modality(name: str) -> None:
    _MODALITIES.pop(name, None)


def load_modalities() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        if module.ispkg:
            importlib.import_module(module.name)
    for entry in metadata.entry_points(group="medai.modalities"):
        importlib.import_module(entry.value)


def get_modality(name: str) -> Modality:
    load_modalities()
    try:
        return _MODALITIES[name]
    except KeyError:
        raise NotFoundError(f"unknown modality {name!r}; known: {', '.join(sorted(_MODALITIES))}") from None


def list_modalities() -> list[Modality]:
    load_modalities()
    return [_MODALITIES[name] for name in sorted(_MODALITIES)]


def modality_for_data(path: Path, options) -> Modality:
    """The modality that reads ``path``: the one named with ``--modality``, else the one that claims it most."""
    if options.modality:
        return get_modality(options.modality)
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"data {path} does not exist")
    claims = {m.name: m.claims(path, options) for m in list_modalities()}
    best = max(claims.values(), default=0)
    if best <= 0:
        raise MedAIError(f"no modality reads {path}; known modalities: {', '.join(sorted(claims))} "
                         "(name one with --modality)")
    winners = sorted(name for name, score in claims.items() if score == best)
    if len(winners) > 1:
        raise MedAIError(f"{path} could be read by the {' or the '.join(winners)} modality; choose one with "
                         f"--modality {winners[0]}")
    return _MODALITIES[winners[0]]


def column_hint(series, skip: str = "") -> str | None:
    """``"the molecules modality reads it (--modality molecules)"`` when some modality recognises a column."""
    for modality in list_modalities():
        if modality.name != skip and (what := modality.records_column(series)):
            return f"it holds {what}: the {modality.name} modality reads them (--modality {modality.name})"
    return None


__all__ = ["FILES", "RECORDS", "CliOption", "Modality", "column_hint", "get_modality", "list_modalities",
           "load_modalities", "modality_for_data", "register_modality", "unregister_modality"]
