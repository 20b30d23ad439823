"""Learners over visit histories (:class:`VisitHistories`), for binary, multiclass and multilabel targets.

- ``BagOfCodes``: the classical baseline - the index visit's codes (0/1) and the earlier visits' codes (log1p of
  how many earlier visits carried each code) plus the number of earlier visits, then a logistic regression (one
  per label for multilabel). Saved as JSON (vocabulary, coefficients).
- ``VisitNetwork`` (``visit_networks``): a GRU or a Transformer over the sequence of visits.

``y``: class indices (binary, multiclass) or an ``(n, L)`` 0/1 matrix with NaN where unknown (multilabel).
``predict_proba``: ``(n, classes)`` or ``(n, L)``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from medai.errors import MedAIError
from medai.modalities.longitudinal.histories import VisitHistories

KINDS = ("binary", "multiclass", "multilabel")
BAG = "bag_of_codes.json"


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise MedAIError(f"visit learners predict {', '.join(KINDS)} targets, not {kind!r}")


def check_histories(X, what: str = "visit histories") -> VisitHistories:
    if not isinstance(X, VisitHistories):
        raise MedAIError(f"{what}: expected visit histories (from a visit task), got {type(X).__name__}")
    if len(X) == 0:
        raise MedAIError(f"{what}: no samples")
    return X


class BagOfCodes(BaseEstimator):
    """Bag of codes + logistic regression (L2, ``C``); ``history=False`` uses the index visit only."""

    def __init__(self, kind: str = "binary", n_outputs: int = 2, C: float = 1.0, history: bool = True,
                 seed: int = 0):
        self.kind = kind
        self.n_outputs = n_outputs
        self.C = C
        self.history = history
        self.seed = seed

    def describe(self) -> str:
        return (f"bag of codes ({'index visit + earlier visits' if self.history else 'index visit'}) + logistic "
                f"regression (C={self.C:g})")

    def _features(self, X: VisitHistories):
        from scipy import sparse

        rows, cols, vals = [], [], []
        width = len(self.vocabulary_)
        for i, history in enumerate(X.tokens()):
            now = {self.vocabulary_[t] for t in history[-1] if t in self.vocabulary_}
            cells = {j: 1.0 for j in now}
            if self.history:
                counts: dict[int, int] = {}
                for visit in history[:-1]:
                    for t in set(visit):
                        j = self.vocabulary_.get(t)
                        if j is not None:
                            counts[j] = counts.get(j, 0) + 1
                cells.update({width + j: float(np.log1p(c)) for j, c in counts.items()})
                cells[2 * width] = float(np.log1p(len(history) - 1))
            rows += [i] * len(cells)
            cols += list(cells)
            vals += list(cells.values())
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(X), 2 * width + 1 if self.history else width))

    def fit(self, X, y, X_val=None, y_val=None):
        from sklearn.linear_model import LogisticRegression

        check_kind(self.kind)
        X = check_histories(X, "training data")
        tokens = sorted({t for history in X.tokens() for visit in history for t in visit})
        self.vocabulary_ = {t: j for j, t in enumerate(tokens)}
        F = self._features(X)
        y = np.asarray(y)
        outputs = [y[:, j] for j in range(y.shape[1])] if self.kind == "multilabel" else [y]
        self.coef_, self.intercept_, self.classes_ = [], [], np.arange(int(self.n_outputs))
        for target in outputs:
            known = ~np.isnan(target.astype(float))
            t = target[known].astype(int)
            present = np.unique(t)
            if len(present) < 2:  # one class only: its (smoothed) rate, no features
                k = 2 if self.kind != "multiclass" else int(self.n_outputs)
                prior = np.full(k, 1.0 / (len(t) + k))
                prior[present] += len(t) / (len(t) + k) if len(t) else 0.0
                self.coef_.append(np.zeros((k, F.shape[1])))
                self.intercept_.append(np.log(prior))
                continue
            model = LogisticRegression(C=float(self.C), max_iter=5000, random_state=int(self.seed)).fit(F[known], t)
            coef, intercept = model.coef_, model.intercept_
            if len(model.classes_) == 2:  # sigmoid as a two-class softmax
                coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
            k = 2 if self.kind != "multiclass" else int(self.n_outputs)
            full_coef, full_intercept = np.zeros((k, F.shape[1])), np.full(k, -30.0)  # unseen classes: ~0
            full_coef[model.classes_], full_intercept[model.classes_] = coef, intercept
            self.coef_.append(full_coef)
            self.intercept_.append(full_intercept)
        return self

    def predict_proba(self, X) -> np.ndarray:
        from scipy.special import softmax

        F = self._features(check_histories(X))
        probs = [softmax(np.asarray(F @ c.T) + b, axis=1) for c, b in zip(self.coef_, self.intercept_, strict=True)]
        if self.kind == "multilabel":
            return np.column_stack([p[:, 1] for p in probs])
        return probs[0]

    def predict(self, X) -> np.ndarray:
        p = self.predict_proba(X)
        return (p >= 0.5).astype(int) if self.kind == "multilabel" else p.argmax(axis=1)

    def to_files(self) -> dict[str, bytes]:
        state: dict[str, Any] = {"params": self.get_params(), "vocabulary": list(self.vocabulary_),
                                 "coef": [c.tolist() for c in self.coef_],
                                 "intercept": [b.tolist() for b in self.intercept_]}
        return {BAG: json.dumps(state).encode()}

    @classmethod
    def from_files(cls, data: bytes) -> BagOfCodes:
        state = json.loads(data)
        learner = cls(**state["params"])
        learner.vocabulary_ = {t: j for j, t in enumerate(state["vocabulary"])}
        learner.coef_ = [np.asarray(c, dtype=float) for c in state["coef"]]
        learner.intercept_ = [np.asarray(b, dtype=float) for b in state["intercept"]]
        learner.classes_ = np.arange(int(learner.n_outputs))
        return learner
