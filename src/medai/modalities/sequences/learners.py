"""Classifiers on k-mer features of sequences: a linear SVM with calibrated probabilities (the seeds' k-mer SVM),
logistic regression, and LightGBM, as scikit-learn estimators that take cleaned sequences (strings).

The longest k-mer (1..6 by default) and, for the linear models, the regularisation C are chosen by an inner
stratified cross-validation on the training records only; the SVM's scores become probabilities by Platt
scaling fitted on held-out folds of the training records (``CalibratedClassifierCV``, one SVM refitted on all
of them). LightGBM's k is chosen by the same inner CV with logistic regression as a quick probe.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold

from medai.errors import MedAIError
from medai.modalities.sequences.kmers import KmerVectorizer

MODELS = ("svm", "logistic", "gbm")
C_GRID = (0.03, 0.3, 3.0)


def parse_k_range(text: str) -> tuple[int, ...]:
    """``"1-6"`` -> (1, ..., 6); ``"3"`` -> (3,); ``"2,4"`` -> (2, 4)."""
    text = str(text).strip()
    try:
        if "-" in text:
            low, high = (int(part) for part in text.split("-", 1))
            ks = tuple(range(low, high + 1))
        else:
            ks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise MedAIError(f"--k must be a k-mer length, a range like 1-6 or a list like 2,4; got {text!r}") from None
    if not ks or min(ks) < 1 or max(ks) > 12:
        raise MedAIError(f"--k must name k-mer lengths between 1 and 12, got {text!r}")
    return ks


def _linear(model: str, C: float, seed: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    if model == "svm":
        from sklearn.svm import LinearSVC

        return make_pipeline(Normalizer(), LinearSVC(C=C, random_state=seed, max_iter=5000))
    from sklearn.linear_model import LogisticRegression

    return make_pipeline(Normalizer(), LogisticRegression(C=C * 30, max_iter=2000, random_state=seed))


def _boosting(seed: int, n_estimators: int):
    from lightgbm import LGBMClassifier

    # one thread: LightGBM's OpenMP threads spin-wait, which costs more than it saves on a shared machine
    return LGBMClassifier(n_estimators=n_estimators, learning_rate=0.05, num_leaves=31, min_child_samples=5,
                          colsample_bytree=0.5, subsample=0.8, subsample_freq=1, random_state=seed, n_jobs=1,
                          verbosity=-1)


class KmerClassifier(ClassifierMixin, BaseEstimator):
    """k-mer features + a linear SVM (calibrated), logistic regression or LightGBM.

    ``X``: cleaned sequences; ``y``: class indices. ``features``: ``spectrum``, ``positional`` or ``auto``
    (positional when every training sequence has one length, i.e. aligned windows). ``k``: a fixed longest
    k-mer, or ``None`` to choose it from ``k_range`` by inner CV.
    """

    def __init__(self, model: str = "svm", features: str = "auto", k: int | None = None, k_range: str = "1-6",
                 alphabet: str = "dna", ambiguity: str = "keep", C: float | None = None, inner_folds: int = 3,
                 n_estimators: int = 300, seed: int = 0):
        self.model = model
        self.features = features
        self.k = k
        self.k_range = k_range
        self.alphabet = alphabet
        self.ambiguity = ambiguity
        self.C = C
        self.inner_folds = inner_folds
        self.n_estimators = n_estimators
        self.seed = seed

    def _vectorizer(self, k: int, features: str) -> KmerVectorizer:
        return KmerVectorizer(k=k, features=features, alphabet=self.alphabet, ambiguity=self.ambiguity)

    def _estimator(self, C: float):
        if self.model == "gbm":
            return _boosting(self.seed, int(self.n_estimators))
        return _linear(self.model, C, self.seed)

    def fit(self, X, y):
        if self.model not in MODELS:
            raise MedAIError(f"unknown k-mer model {self.model!r}; choose one of {', '.join(MODELS)}")
        X, y = list(X), np.asarray(y).astype(int)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise MedAIError("the training sequences hold a single class; a classifier needs at least two")
        self.n_classes_ = int(self.classes_.max()) + 1
        lengths = {len(s) for s in X}
        self.features_ = self.features if self.features != "auto" else (
            "positional" if len(lengths) == 1 else "spectrum")
        self.k_, self.C_, self.search_ = self._choose(X, y)
        self.vectorizer_ = self._vectorizer(self.k_, self.features_)
        F = self.vectorizer_.fit_transform(X)
        self.estimator_ = self._final(F, y)
        return self

    def _folds(self, y) -> int:
        return int(min(self.inner_folds, np.bincount(y)[self.classes_].min()))

    def _choose(self, X, y) -> tuple[int, float, list[dict]]:
        ks = (int(self.k),) if self.k else parse_k_range(self.k_range)
        grid = (float(self.C),) if self.C else C_GRID
        folds = self._folds(y)
        if folds < 2 or (len(ks) == 1 and len(grid) == 1):
            return ks[-1] if len(ks) == 1 else 3, grid[len(grid) // 2], []
        vectorizer = self._vectorizer(max(ks), self.features_)
        F = vectorizer.fit_transform(X)
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(np.zeros(len(y)), y))
        probe = "logistic" if self.model == "gbm" else self.model
        search = []
        for k in ks:
            Fk = F[:, vectorizer.columns_up_to(k)]
            for C in grid:
                scores = [np.mean(_linear(probe, C, self.seed).fit(Fk[tr], y[tr]).predict(Fk[te]) == y[te])
                          for tr, te in splits]
                search.append({"k": k, "C": C, "accuracy": float(np.mean(scores))})
        best = max(search, key=lambda row: (round(row["accuracy"], 4), -row["k"], -abs(np.log10(row["C"]))))
        return best["k"], best["C"], search

    def _final(self, F, y):
        estimator = self._estimator(self.C_)
        if self.model != "svm":
            return estimator.fit(F, y)
        from sklearn.calibration import CalibratedClassifierCV

        folds = self._folds(y)
        if folds < 2:
            raise MedAIError("the SVM's probabilities are calibrated on held-out folds: each class needs at least "
                             "two training sequences")
        return CalibratedClassifierCV(estimator, method="sigmoid", cv=folds, ensemble=False).fit(F, y)

    # -- outputs ---------------------------------------------------------------------------------------------
    def features_of(self, X):
        return self.vectorizer_.transform(list(X))

    def proba_from_features(self, F) -> np.ndarray:
        proba = np.zeros((F.shape[0], self.n_classes_))
        proba[:, self.estimator_.classes_.astype(int)] = self.estimator_.predict_proba(F)
        return proba

    def predict_proba(self, X) -> np.ndarray:
        return self.proba_from_features(self.features_of(X))

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    def weights(self) -> tuple[np.ndarray, str]:
        """Per-class weights of the k-mer features ``(classes, features)`` and what they are."""
        if self.model == "gbm":
            return self.estimator_.feature_importances_[None, :].astype(float), "gain importance"
        linear = (self.estimator_.calibrated_classifiers_[0].estimator if self.model == "svm"
                  else self.estimator_)[-1]
        coef = np.asarray(linear.coef_, dtype=float)
        if coef.shape[0] == 1:  # binary: one weight vector for class 1; class 0 gets its opposite
            coef = np.vstack([-coef[0], coef[0]])
        return coef, "linear weight (on L2-normalised k-mer features)"

    def top_kmers(self, top: int = 10) -> dict[int, list[tuple[str, float]]]:
        """The k-mers with the largest weight towards each class."""
        weights, _ = self.weights()
        names = self.vectorizer_.get_feature_names_out()
        rows = {}
        for row, cls in enumerate(self.classes_ if weights.shape[0] > 1 else [None]):
            order = np.argsort(-weights[row])[:top]
            rows[-1 if cls is None else int(cls)] = [(str(names[j]), float(weights[row, j])) for j in order]
        return rows

    def describe(self) -> str:
        model = {"svm": "linear SVM (Platt-calibrated)", "logistic": "logistic regression", "gbm": "LightGBM"}
        return f"{model[self.model]} on {self.features_} k-mers (k = 1..{self.k_})"
