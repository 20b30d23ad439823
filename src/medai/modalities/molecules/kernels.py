"""A support-vector classifier with the MinMax (Tanimoto on counts) kernel, on Morgan count fingerprints.

The MinMax kernel of two count vectors ``a`` and ``b`` is ``sum(min(a, b)) / sum(max(a, b))`` (Ralaivola et al.
2005): the Tanimoto similarity generalised to counts, a valid (positive semi-definite) kernel, and 1 for two
molecules with the same counts. With counts as whole numbers, ``sum(min(a, b)) = sum_t (a >= t) . (b >= t)`` over
the levels ``t = 1, 2, ...``: a few sparse binary matrix products, and ``sum(max) = sum(a) + sum(b) - sum(min)``.

Memory stays bounded: the kernel is computed in blocks of rows; a training set larger than ``max_train``
molecules is fitted on a seeded sample of ``max_train`` of them that keeps every molecule of the rarer class
(the training Gram matrix holds ``max_train**2`` float64 values: 512 MB at 8,000), and the fitted model keeps only
its support vectors' counts.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from medai.errors import MedAIError

BLOCK_ROWS = 1024
PLATT_FOLDS = 5


def _counts(F, what: str):
    from scipy import sparse

    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2:
        raise MedAIError(f"the MinMax kernel needs a 2-D matrix of counts ({what}), got shape {F.shape}")
    if not np.all(np.isfinite(F)):
        raise MedAIError(f"the MinMax kernel needs finite counts ({what}): found NaN or infinite values")
    if np.any(F < 0):
        raise MedAIError(f"the MinMax kernel needs non-negative counts ({what}): found negative values")
    return sparse.csr_matrix(np.rint(F))


def minmax_kernel(A, B) -> np.ndarray:
    """``(len(A), len(B))`` MinMax similarities of the rows of two non-negative count matrices (rounded to
    whole numbers); 1 where both rows are all zero."""
    A, B = _counts(A, "first"), _counts(B, "second")
    if A.shape[1] != B.shape[1]:
        raise MedAIError(f"the MinMax kernel needs matrices of equal width, got {A.shape[1]} and {B.shape[1]}")
    sum_b = np.asarray(B.sum(axis=1)).ravel()
    levels_b = [(B >= t).astype(np.float64).T.tocsr() for t in range(1, (int(B.max()) if B.nnz else 0) + 1)]
    out = np.empty((A.shape[0], B.shape[0]))
    for start in range(0, A.shape[0], BLOCK_ROWS):
        block = A[start:start + BLOCK_ROWS]
        inter = np.zeros((block.shape[0], B.shape[0]))
        for t, level_b in enumerate(levels_b, start=1):
            level_a = (block >= t).astype(np.float64)
            if level_a.nnz == 0:
                break
            inter += (level_a @ level_b).toarray()
        union = np.asarray(block.sum(axis=1)).ravel()[:, None] + sum_b[None, :] - inter
        out[start:start + block.shape[0]] = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    return out


class MinMaxSVC(ClassifierMixin, BaseEstimator):
    """``sklearn.svm.SVC`` on the precomputed MinMax kernel of count features. Probabilities by Platt scaling:
    a logistic regression on the decision values of ``PLATT_FOLDS``-fold stratified cross-validation (seeded)
    inside the training molecules, as libsvm's ``probability=True`` does (deprecated in scikit-learn 1.9).
    Binary targets only. ``class_weight`` as SVC's."""

    def __init__(self, C: float = 3.0, max_train: int = 8000, seed: int = 0, class_weight=None):
        self.C = C
        self.max_train = max_train
        self.seed = seed
        self.class_weight = class_weight

    def _sample(self, y: np.ndarray) -> np.ndarray:
        """Positions to fit on: all, or at most ``max_train`` (seeded) keeping every molecule of the rarer class."""
        n = len(y)
        if n <= int(self.max_train):
            return np.arange(n)
        rng = np.random.default_rng(self.seed)
        labels, sizes = np.unique(y, return_counts=True)
        rare = np.flatnonzero(y == labels[np.argmin(sizes)])
        if len(rare) >= int(self.max_train):
            return np.sort(rng.choice(n, int(self.max_train), replace=False))
        rest = rng.choice(np.setdiff1d(np.arange(n), rare), int(self.max_train) - len(rare), replace=False)
        return np.sort(np.concatenate([rare, rest]))

    def fit(self, F, y):
        y = np.asarray(y)
        if len(y) != len(F):
            raise MedAIError(f"the MinMax SVM got {len(F)} rows of features and {len(y)} labels")
        if len(np.unique(y)) != 2:
            raise MedAIError(f"the MinMax SVM needs a binary target, got {len(np.unique(y))} classes")
        keep = self._sample(y)
        X = np.asarray(F, dtype=np.float32)[keep]
        K = minmax_kernel(X, X)
        self.svc_ = self._svc().fit(K, y[keep])
        self.platt_ = self._platt(K, y[keep])
        self.classes_ = self.svc_.classes_
        self.n_train_ = len(keep)
        self.n_features_in_ = X.shape[1]
        self.support_counts_ = X[self.svc_.support_]  # all that prediction needs of the training molecules
        return self

    def _svc(self):
        from sklearn.svm import SVC

        return SVC(kernel="precomputed", C=float(self.C), class_weight=self.class_weight)

    def _platt(self, K: np.ndarray, y: np.ndarray):
        """The logistic map from decision values to probabilities, fitted on out-of-fold decision values."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        folds = min(PLATT_FOLDS, int(np.bincount(np.unique(y, return_inverse=True)[1]).min()))
        if folds >= 2:
            scores = np.zeros(len(y))
            for train, val in StratifiedKFold(folds, shuffle=True, random_state=int(self.seed)).split(K, y):
                scores[val] = self._svc().fit(K[np.ix_(train, train)], y[train]).decision_function(
                    K[np.ix_(val, train)])
        else:  # a class with a single molecule: the training decision values
            scores = self.svc_.decision_function(K)
        return LogisticRegression(C=1e4).fit(scores[:, None], y)

    def _kernel(self, F) -> np.ndarray:
        F = np.asarray(F, dtype=np.float32)
        if F.ndim != 2 or F.shape[1] != self.n_features_in_:
            raise MedAIError(f"the MinMax SVM was fitted on {self.n_features_in_} count features, got shape "
                             f"{F.shape}")
        K = np.zeros((len(F), self.n_train_))
        K[:, self.svc_.support_] = minmax_kernel(F, self.support_counts_)
        return K

    def decision_function(self, F) -> np.ndarray:
        return self.svc_.decision_function(self._kernel(F))

    def predict_proba(self, F) -> np.ndarray:
        return self.platt_.predict_proba(self.decision_function(F)[:, None])

    def predict(self, F) -> np.ndarray:
        return self.classes_[self.predict_proba(F).argmax(axis=1)]
