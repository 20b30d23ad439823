"""Document classifiers with scikit-learn conventions: TF-IDF word and character n-grams with a linear model.

``fit(texts, y)``: ``y`` holds class indices (binary, multiclass) or an ``(n, labels)`` 0/1 matrix with NaN where
a label is unknown (multilabel: one logistic regression per label on the records that know it).
``predict_proba(texts)`` gives ``(n, classes)`` or ``(n, labels)``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from medai.errors import MedAIError


def is_multilabel(y) -> bool:
    return np.asarray(y).ndim == 2


class TfidfClassifier(BaseEstimator, ClassifierMixin):
    """TF-IDF of word 1..``word_ngrams`` and character 2..``char_ngrams`` grams (none when 0; log-scaled term
    counts when ``sublinear``) + logistic regression (L2, ``C``; class-balanced weights when ``balanced``)."""

    def __init__(self, C: float = 10.0, word_ngrams: int = 2, char_ngrams: int = 5, min_df: int = 2,
                 max_features: int = 300_000, balanced: bool = True, sublinear: bool = True, seed: int = 0):
        self.C = C
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_features = max_features
        self.balanced = balanced
        self.sublinear = sublinear
        self.seed = seed

    def _vectorizer(self, n: int) -> FeatureUnion:
        min_df = self.min_df if n >= 20 else 1
        parts = [("word", TfidfVectorizer(ngram_range=(1, self.word_ngrams), min_df=min_df,
                                          sublinear_tf=self.sublinear, max_features=self.max_features,
                                          token_pattern=r"(?u)\b\w+\b"))]
        if self.char_ngrams:
            parts.append(("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, self.char_ngrams),
                                                  min_df=min_df, sublinear_tf=self.sublinear,
                                                  max_features=self.max_features)))
        return FeatureUnion(parts)

    def _model(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=3000, class_weight="balanced" if self.balanced else None,
                                  random_state=self.seed)

    def fit(self, X, y, X_val=None, y_val=None):
        texts = list(X)
        self.vectorizer_ = self._vectorizer(len(texts))
        features = self.vectorizer_.fit_transform(texts)
        y = np.asarray(y)
        if is_multilabel(y):
            self.models_ = []
            for j in range(y.shape[1]):
                known = ~np.isnan(y[:, j])
                labels = y[known, j].astype(int)
                if len(np.unique(labels)) < 2:
                    raise MedAIError(f"label {j + 1} has a single value among the training records")
                self.models_.append(self._model().fit(features[known], labels))
            self.multilabel_ = True
        else:
            self.models_ = [self._model().fit(features, y.astype(int))]
            self.multilabel_ = False
            self.classes_ = self.models_[0].classes_
        return self

    def transform(self, X):
        return self.vectorizer_.transform(list(X))

    def predict_proba(self, X) -> np.ndarray:
        features = self.transform(X)
        if self.multilabel_:
            return np.column_stack([m.predict_proba(features)[:, 1] for m in self.models_])
        return self.models_[0].predict_proba(features)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return (proba >= 0.5).astype(int) if self.multilabel_ else proba.argmax(axis=1)

    def feature_names(self) -> np.ndarray:
        names = []
        for name, vectorizer in self.vectorizer_.transformer_list:
            names += [f"{name}:{f}" for f in vectorizer.get_feature_names_out()]
        return np.asarray(names, dtype=object)

    def contributions(self, X, outputs: list[int]) -> list[list[tuple[str, float, float]]]:
        """Per record, its n-grams with (tf-idf value, value x weight toward ``outputs[i]``), largest first."""
        features = self.transform(X).tocsr()
        names = self.feature_names()
        out = []
        for i, k in enumerate(outputs):
            if self.multilabel_:
                coef = self.models_[k].coef_[0]
            else:
                model = self.models_[0]
                coef = model.coef_[0] * (1 if k == 1 else -1) if model.coef_.shape[0] == 1 else model.coef_[k]
            row = features.getrow(i)
            items = [(names[j], float(v), float(v * coef[j])) for j, v in zip(row.indices, row.data, strict=True)]
            out.append(sorted(items, key=lambda t: -t[2]))
        return out
