"""Loading any model artifact: verify checksums, then hand it to its family's loader."""

from __future__ import annotations

import importlib
from pathlib import Path

from medai.errors import IntegrityError
from medai.models import base
from medai.models.artifact import read_model_json, verify_artifact

# family name -> module that registers its loader (imported lazily: imaging pulls in torch)
FAMILY_MODULES = {
    "tabular": "medai.models.tabular",
    "imaging": "medai.models.imaging.artifact",
}


def load_model(directory: str | Path, expected_manifest: dict[str, str] | None = None) -> base.LoadedModel:
    directory = Path(directory)
    verify_artifact(directory, expected_manifest)
    meta = read_model_json(directory, verify=False)
    family = meta.get("family")
    if family not in FAMILY_MODULES:
        raise IntegrityError(f"{directory}/model.json names an unknown model family {family!r}")
    importlib.import_module(FAMILY_MODULES[family])
    return base.family_loader(family)(directory, meta)
