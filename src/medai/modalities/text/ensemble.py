"""The ensemble document classifier: TF-IDF n-grams with a linear model (:class:`TfidfClassifier`) and frozen
MiniLM sentence embeddings with a logistic head (:class:`SentenceEmbeddingClassifier`), each fitted on the same
training documents; the prediction is the (weighted) mean of their probabilities. The two see different things -
exact words and spellings versus meaning in context - so their errors differ and the mean is better than either
on Medical Abstracts (README, "Clinical text").

Saved without pickle: the TF-IDF member as a skops file (only allow-listed types load), the embedding head as
safetensors, the settings as JSON.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from medai.errors import IntegrityError, MedAIError

MEMBERS = ("tfidf", "minilm")


class EnsembleClassifier(BaseEstimator, ClassifierMixin):
    """Mean of the members' probabilities (``weights``: the TF-IDF member's share, the rest to MiniLM)."""

    learner_name = "ensemble"

    def __init__(self, tfidf_weight: float = 0.5, tfidf_C: float = 10.0, minilm_C: float = 1.0,
                 max_length: int = 200, seed: int = 0):
        self.tfidf_weight = tfidf_weight
        self.tfidf_C = tfidf_C
        self.minilm_C = minilm_C
        self.max_length = max_length
        self.seed = seed

    def _members(self):
        from medai.modalities.text.classify import TfidfClassifier
        from medai.modalities.text.embeddings import SentenceEmbeddingClassifier

        if not 0.0 <= self.tfidf_weight <= 1.0:
            raise MedAIError(f"ensemble tfidf_weight {self.tfidf_weight} must lie in [0, 1]")
        return (TfidfClassifier(C=self.tfidf_C, seed=self.seed),
                SentenceEmbeddingClassifier(C=self.minilm_C, max_length=self.max_length, seed=self.seed))

    def fit(self, X, y, X_val=None, y_val=None):
        texts = list(X)
        self.tfidf_, self.minilm_ = self._members()
        self.tfidf_.fit(texts, y)
        self.minilm_.fit(texts, y)
        self.multilabel_ = self.tfidf_.multilabel_
        if not self.multilabel_:
            self.classes_ = self.tfidf_.classes_
        return self

    def member_probas(self, X) -> dict[str, np.ndarray]:
        texts = list(X)
        return {"tfidf": self.tfidf_.predict_proba(texts), "minilm": self.minilm_.predict_proba(texts)}

    def predict_proba(self, X) -> np.ndarray:
        p = self.member_probas(X)
        return self.tfidf_weight * p["tfidf"] + (1.0 - self.tfidf_weight) * p["minilm"]

    def predict(self, X) -> np.ndarray:
        p = self.predict_proba(X)
        return (p >= 0.5).astype(int) if self.multilabel_ else p.argmax(axis=1)

    def save(self, folder) -> None:
        from medai.modalities.skops_io import dumps
        from medai.modalities.text.embeddings import ENCODER
        from medai.modalities.text.persist import linear_head_arrays, save_arrays

        folder = Path(folder)
        (folder / "tfidf.skops").write_bytes(dumps(self.tfidf_))
        save_arrays(folder, linear_head_arrays(self.minilm_.models_),
                    {"learner": "ensemble", "members": list(MEMBERS), "encoder": ENCODER,
                     "params": self.get_params(), "minilm_params": self.minilm_.get_params(),
                     "multilabel": self.multilabel_, "heads": len(self.minilm_.models_)}, name="minilm")

    @classmethod
    def load(cls, folder, meta):
        from medai.modalities.skops_io import loads
        from medai.modalities.text.classify import TfidfClassifier
        from medai.modalities.text.embeddings import SentenceEmbeddingClassifier
        from medai.modalities.text.persist import linear_heads, load_arrays

        folder = Path(folder)
        path = folder / "tfidf.skops"
        if not path.is_file() or not (folder / "minilm.safetensors").is_file():
            raise IntegrityError(f"{folder}: the ensemble's member files are missing")
        learner = cls(**meta["params"])
        learner.tfidf_ = loads(path.read_bytes(), str(path), ("medai.modalities.text.",))
        if not isinstance(learner.tfidf_, TfidfClassifier):
            raise IntegrityError(f"{path} does not hold a TF-IDF classifier")
        minilm = SentenceEmbeddingClassifier(**meta["minilm_params"])
        minilm.multilabel_ = meta["multilabel"]
        minilm.models_ = linear_heads(load_arrays(folder, "minilm"), meta["heads"])
        learner.minilm_ = minilm
        learner.multilabel_ = meta["multilabel"]
        if not learner.multilabel_:
            learner.classes_ = learner.tfidf_.classes_
        return learner
