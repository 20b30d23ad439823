"""The mean of the calibrated k-mer SVM's and the CNN's class probabilities (learner ``ensemble``)."""

from __future__ import annotations

import json

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

MARKER, KMER_FILE = "ensemble.json", "kmer.skops"


class SequenceEnsemble(ClassifierMixin, BaseEstimator):
    watches_validation = True

    def __init__(self, kmer=None, cnn=None):
        self.kmer = kmer
        self.cnn = cnn

    def fit(self, X, y, X_val=None, y_val=None):
        from sklearn.base import clone

        self.kmer_ = clone(self.kmer).fit(X, y)
        self.cnn_ = clone(self.cnn).fit(X, y, X_val, y_val)
        self.classes_ = self.kmer_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        X = list(X)
        a, b = self.kmer_.predict_proba(X), self.cnn_.predict_proba(X)
        width = max(a.shape[1], b.shape[1])
        a, b = (np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in (a, b))
        return (a + b) / 2

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    @property
    def kmer_member(self):
        return self.kmer_

    def describe(self) -> str:
        return f"mean of {self.kmer_.describe()} and {self.cnn_.describe()}"

    def to_files(self) -> dict[str, bytes]:
        from medai.modalities.skops_io import dumps

        return {KMER_FILE: dumps(self.kmer_), **self.cnn_.to_files(),
                MARKER: json.dumps({"members": ["kmer", "cnn"]}).encode()}

    @classmethod
    def from_files(cls, directory, trusted) -> SequenceEnsemble:
        from medai.modalities.sequences.cnn import CONFIG, WEIGHTS, SequenceCNN
        from medai.modalities.skops_io import loads

        learner = cls()
        path = directory / KMER_FILE
        learner.kmer_ = loads(path.read_bytes(), str(path), trusted)
        learner.cnn_ = SequenceCNN.from_files((directory / WEIGHTS).read_bytes(), (directory / CONFIG).read_bytes())
        learner.kmer, learner.cnn = learner.kmer_, learner.cnn_
        learner.classes_ = learner.kmer_.classes_
        return learner
