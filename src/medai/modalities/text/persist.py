"""Saving and loading the text networks without pickle: tensors in safetensors, everything else in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medai.errors import IntegrityError


def save_arrays(folder: Path, arrays: dict[str, np.ndarray], meta: dict, name: str = "weights") -> None:
    from safetensors.numpy import save_file

    folder = Path(folder)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / f"{name}.safetensors"))
    (folder / "learner.json").write_text(json.dumps(meta, ensure_ascii=False))


def load_arrays(folder: Path, name: str = "weights") -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(Path(folder) / f"{name}.safetensors"))


def load_saved(folder: Path):
    """The learner saved in ``folder`` (by its ``learner.json``)."""
    meta = json.loads((Path(folder) / "learner.json").read_text())
    kind = meta.get("learner")
    if kind == "minilm":
        from medai.modalities.text.embeddings import SentenceEmbeddingClassifier

        return SentenceEmbeddingClassifier.load(folder, meta)
    if kind == "ensemble":
        from medai.modalities.text.ensemble import EnsembleClassifier

        return EnsembleClassifier.load(folder, meta)
    if kind == "rnn":
        from medai.modalities.text.rnn import AttentionRNNClassifier

        return AttentionRNNClassifier.load(folder, meta)
    if kind == "bilstm-crf":
        from medai.modalities.text.bilstm_crf import BiLSTMCRFTagger

        return BiLSTMCRFTagger.load(folder, meta)
    if kind == "transformer":
        from medai.modalities.text.hf import load_transformer

        return load_transformer(folder, meta)
    raise IntegrityError(f"{folder}: unknown text learner {kind!r}")


def linear_head_arrays(models) -> dict[str, np.ndarray]:
    out = {}
    for j, model in enumerate(models):
        out[f"coef_{j}"] = model.coef_.astype(np.float64)
        out[f"intercept_{j}"] = model.intercept_.astype(np.float64)
        out[f"classes_{j}"] = np.asarray(model.classes_, dtype=np.int64)
    return out


def linear_heads(arrays: dict[str, np.ndarray], count: int):
    from sklearn.linear_model import LogisticRegression

    models = []
    for j in range(count):
        model = LogisticRegression()
        model.coef_, model.intercept_ = arrays[f"coef_{j}"], arrays[f"intercept_{j}"]
        model.classes_ = arrays[f"classes_{j}"]
        model.n_features_in_ = model.coef_.shape[1]
        models.append(model)
    return models
