"""k-mer features of sequences, as a scikit-learn transformer giving a sparse matrix.

- ``spectrum``: how often each k-mer occurs anywhere in the sequence (lengths ``k_min..k``), divided by the
  number of k-mers of that length in the sequence, so that long and short sequences compare (the spectrum
  kernel of Leslie et al. 2002);
- ``positional``: which k-mer starts at each position (lengths ``k_min..k``), for aligned sequences of one
  length such as windows around a splice site (the feature map of the weighted-degree kernel, Rätsch &
  Sonnenburg 2004).

The vocabulary is the k-mers seen in training; unseen ones are ignored at prediction time. Each column keeps
its k-mer length (``lengths_``) so that a shorter k can be chosen from one matrix without recounting.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin

from medai.modalities.sequences.alphabet import Alphabet

FEATURES = ("spectrum", "positional")


class KmerVectorizer(TransformerMixin, BaseEstimator):
    """Sequences (cleaned strings) -> sparse k-mer features ``(n, vocabulary)``."""

    def __init__(self, k: int = 3, k_min: int = 1, features: str = "spectrum", alphabet: str = "dna",
                 ambiguity: str = "keep"):
        self.k = k
        self.k_min = k_min
        self.features = features
        self.alphabet = alphabet
        self.ambiguity = ambiguity

    def _tokens(self, sequence: str) -> Counter:
        alphabet = Alphabet(self.alphabet, self.ambiguity)
        counts: Counter = Counter()
        positional = self.features == "positional"
        for k in range(int(self.k_min), int(self.k) + 1):
            total = max(1, len(sequence) - k + 1)
            scale = 1.0 if positional else 1.0 / total
            for start in range(len(sequence) - k + 1):
                for kmer, weight in alphabet.weighted_kmers(sequence[start:start + k]):
                    counts[f"{start}:{kmer}" if positional else kmer] += weight * scale
        return counts

    def fit(self, X, y=None):
        self._learn([self._tokens(s) for s in X])
        return self

    def fit_transform(self, X, y=None, **_):
        rows = [self._tokens(s) for s in X]
        self._learn(rows)
        return self._matrix(rows)

    def _learn(self, rows: list[Counter]) -> None:
        if self.features not in FEATURES:
            from medai.errors import MedAIError

            raise MedAIError(f"k-mer features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        vocabulary = sorted({token for row in rows for token in row})
        self.vocabulary_ = {token: i for i, token in enumerate(vocabulary)}
        self.lengths_ = np.array([len(t.split(":", 1)[-1]) for t in vocabulary], dtype=int)

    def _matrix(self, rows) -> sparse.csr_matrix:
        indices, values, indptr = [], [], [0]
        vocabulary = self.vocabulary_
        for row in rows:
            for token, value in row.items():
                j = vocabulary.get(token)
                if j is not None:
                    indices.append(j)
                    values.append(value)
            indptr.append(len(indices))
        return sparse.csr_matrix((np.asarray(values, dtype=np.float32), np.asarray(indices, dtype=np.int64),
                                  np.asarray(indptr, dtype=np.int64)), shape=(len(rows), len(vocabulary)))

    def transform(self, X) -> sparse.csr_matrix:
        return self._matrix([self._tokens(s) for s in X])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        names = np.empty(len(self.vocabulary_), dtype=object)
        for token, j in self.vocabulary_.items():
            names[j] = token
        return names

    def columns_up_to(self, k: int) -> np.ndarray:
        """The columns of k-mers no longer than ``k``."""
        return np.flatnonzero(self.lengths_ <= k)
