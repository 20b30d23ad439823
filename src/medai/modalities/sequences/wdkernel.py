"""The weighted-degree kernel with shifts on aligned sequences of one length, and an SVM on it (learner ``wd-svm``).

The kernel (Rätsch & Sonnenburg 2004; with shifts, Rätsch, Sonnenburg & Schölkopf 2005) counts the k-mers two
sequences share at the same position, or shifted by up to ``S`` positions::

    k(x, x') = sum_{k=1..d} beta_k sum_l sum_{s=0..S} delta_s ([u_{k,l+s}(x) = u_{k,l}(x')]
                                                               + [u_{k,l}(x) = u_{k,l+s}(x')])

with ``beta_k = 2(d-k+1) / (d(d+1))`` (shorter k-mers weigh more), ``delta_s = 1 / (2(s+1))`` (the unshifted
match counts once), ``u_{k,l}(x)`` the k-mer of ``x`` starting at ``l``; then normalised to
``k(x, x') / sqrt(k(x, x) k(x', x'))``. It is computed without listing k-mers: along each diagonal of the
position-match matrix, the run of consecutive matches ending at ``l`` (``r``) closes ``min(r, d)`` shared k-mers,
worth ``sum_{k<=min(r, d)} beta_k``.

IUPAC ambiguity codes: kept (``keep``) they are symbols of their own and match the same code; expanded
(``expand``) a code matches nothing, since which letter it stands for is unknown.

The SVM is scikit-learn's ``SVC`` (libsvm) on the precomputed kernel. The degree ``d``, the shift ``S`` and ``C``
are chosen by an inner stratified cross-validation on the training records only (accuracy); the out-of-fold
decision values of the chosen setting fit a multinomial logistic calibration (Platt scaling generalised to several
classes), and the SVM is refitted on all training records.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold

from medai.errors import MedAIError
from medai.modalities.sequences.alphabet import Alphabet

DEGREES, SHIFTS, C_GRID = "8,16", "0,1,2", (0.3, 1.0, 3.0, 10.0)
MAX_RECORDS = 30_000  # the training kernel is n x n: 30,000 records already need 3.6 GB per setting
_UNKNOWN = 254  # an expanded ambiguity code: on the right-hand side it becomes 255, so it matches nothing
BLOCK_PAIRS = 2_000_000  # pairs per block of rows: bounds the memory of the intermediate arrays


def encode(sequences, alphabet: Alphabet, length: int | None = None) -> np.ndarray:
    """``(n, length)`` uint8 symbol codes; every sequence must have ``length`` letters (the first one's if None)."""
    sequences = [str(s) for s in sequences]
    if not sequences:
        raise MedAIError("the weighted-degree kernel needs at least one sequence")
    length = len(sequences[0]) if length is None else int(length)
    bad = [i for i, s in enumerate(sequences) if len(s) != length]
    if bad:
        i = bad[0]
        raise MedAIError(f"the weighted-degree kernel compares aligned sequences of one length ({length}); "
                         f"{len(bad)} sequence(s) differ, e.g. sequence {i + 1} has {len(sequences[i])} letters: "
                         "use the k-mer SVM (spectrum k-mers) for sequences of varying length")
    codes = {symbol: i + 1 for i, symbol in enumerate(alphabet.symbols)}
    if alphabet.ambiguity == "expand":
        codes.update({code: _UNKNOWN for code in alphabet.codes})
    out = np.zeros((len(sequences), length), dtype=np.uint8)
    for n, sequence in enumerate(sequences):
        for i, character in enumerate(sequence):
            code = codes.get(character)
            if code is None:
                raise MedAIError(f"sequence {n + 1}: character {character!r} at position {i + 1} is not a "
                                 f"{alphabet.name.upper() if alphabet.is_nucleotide else 'protein'} symbol")
            out[n, i] = code
    return out


def degree_table(degree: int, longest: int) -> np.ndarray:
    """``table[r]``: the weight of the k-mers closed by a run of ``r`` matches (``r`` capped at ``longest``)."""
    if degree < 1:
        raise MedAIError(f"the weighted-degree kernel's degree must be at least 1, got {degree}")
    k = np.arange(1, degree + 1)
    beta = 2.0 * (degree - k + 1) / (degree * (degree + 1))
    cumulative = np.concatenate([[0.0], np.cumsum(beta)])
    return cumulative[np.minimum(np.arange(longest + 1), degree)].astype(np.float32)


def shift_weights(shift: int) -> np.ndarray:
    """``w[s]`` for the matches at shift ``s`` in one direction: 1 unshifted, ``1 / (2(s+1))`` per direction."""
    if shift < 0:
        raise MedAIError(f"the weighted-degree kernel's shift must be 0 or more, got {shift}")
    return np.array([1.0] + [1.0 / (2 * (s + 1)) for s in range(1, shift + 1)])


def _runs(left: np.ndarray, right: np.ndarray, shift: int, tables: np.ndarray, out: np.ndarray) -> None:
    """Adds, for each degree's table, the k-mers ``left`` (at ``l + shift``) shares with ``right`` (at ``l``).

    ``left``/``right``: code arrays ``(..., L)`` broadcasting to ``out.shape[1:] + (L,)``."""
    length, cap = left.shape[-1], tables.shape[1] - 1
    run = np.zeros(out.shape[1:], dtype=np.uint8)
    match = np.empty(out.shape[1:], dtype=bool)
    for position in range(length - shift):
        np.equal(left[..., position + shift], right[..., position], out=match)
        np.add(run, 1, out=run)
        np.minimum(run, cap, out=run)
        run *= match
        for i, table in enumerate(tables):
            out[i] += table[run]


def _kernels(left: np.ndarray, right: np.ndarray, degrees, shifts) -> np.ndarray:
    """Raw kernels ``(degrees, shifts, ...)`` between broadcast code arrays, every degree and shift in one pass."""
    degrees, shifts = [int(d) for d in degrees], sorted(int(s) for s in shifts)
    longest = max(degrees)
    tables = np.stack([degree_table(d, longest) for d in degrees])
    right = np.where(right == _UNKNOWN, _UNKNOWN + 1, right).astype(np.uint8)
    shape = np.broadcast_shapes(left.shape, right.shape)[:-1]
    weights = shift_weights(max(shifts))
    total = np.zeros((len(degrees), *shape), dtype=np.float64)
    out = np.zeros((len(degrees), len(shifts), *shape), dtype=np.float32)
    term = np.zeros((len(degrees), *shape), dtype=np.float32)
    for s in range(max(shifts) + 1):
        term[:] = 0
        _runs(left, right, s, tables, term)
        if s:
            _runs(right, left, s, tables, term)
        total += weights[s] * term
        for j, wanted in enumerate(shifts):
            if wanted == s:
                out[:, j] = total
    return out


def self_kernels(codes: np.ndarray, degrees, shifts) -> np.ndarray:
    """``k(x, x)`` for each sequence: ``(degrees, shifts, n)``."""
    return _kernels(codes, codes, degrees, shifts)


def cross_kernels(a: np.ndarray, b: np.ndarray, degrees, shifts, symmetric: bool = False) -> np.ndarray:
    """Raw kernels between every row of ``a`` and every row of ``b``: ``(degrees, shifts, len(a), len(b))``.
    ``symmetric`` (``a`` is ``b``): only the upper triangle is computed."""
    degrees, shifts = list(degrees), list(shifts)
    out = np.zeros((len(degrees), len(shifts), len(a), len(b)), dtype=np.float32)
    rows = max(1, BLOCK_PAIRS // max(1, len(b)))
    for start in range(0, len(a), rows):
        stop = min(len(a), start + rows)
        first = start if symmetric else 0
        out[:, :, start:stop, first:] = _kernels(a[start:stop, None, :], b[None, first:, :], degrees, shifts)
    if symmetric:
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = np.triu(out[i, j]) + np.triu(out[i, j], 1).T
    return out


def normalise(raw: np.ndarray, left_diag: np.ndarray, right_diag: np.ndarray) -> np.ndarray:
    return raw / np.sqrt(np.maximum(left_diag[..., :, None] * right_diag[..., None, :], 1e-12))


def wd_kernel(a, b=None, degree: int = 16, shift: int = 0, alphabet: str = "dna", ambiguity: str = "keep",
              normalize: bool = True) -> np.ndarray:
    """The (normalised) weighted-degree kernel with shifts between two lists of sequences of one length."""
    alpha = Alphabet(alphabet, ambiguity)
    A = encode(a, alpha)
    B = A if b is None else encode(b, alpha, A.shape[1])
    raw = cross_kernels(A, B, [degree], [shift], symmetric=b is None)[0, 0].astype(np.float64)
    if not normalize:
        return raw
    return normalise(raw, self_kernels(A, [degree], [shift])[0, 0], self_kernels(B, [degree], [shift])[0, 0])


def parse_grid(text, name: str, low: int) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(v) for v in str(text).split(",")}))
    except ValueError:
        raise MedAIError(f"the weighted-degree kernel's {name} must be a number or a list like 8,16; "
                         f"got {text!r}") from None
    if not values or values[0] < low:
        raise MedAIError(f"the weighted-degree kernel's {name} must be {low} or more, got {text!r}")
    return values


class WDKernelSVM(ClassifierMixin, BaseEstimator):
    """An SVM on the weighted-degree kernel with shifts, for aligned sequences of one length.

    ``X``: cleaned sequences; ``y``: class indices. ``degree``/``shift``: one value, or a comma-separated list
    for the inner CV to choose from; ``C``: a value, or ``None`` to choose from ``C_GRID``.
    """

    def __init__(self, degree: int | str = DEGREES, shift: int | str = SHIFTS, C: float | None = None,
                 alphabet: str = "dna", ambiguity: str = "keep", inner_folds: int = 3, seed: int = 0):
        self.degree = degree
        self.shift = shift
        self.C = C
        self.alphabet = alphabet
        self.ambiguity = ambiguity
        self.inner_folds = inner_folds
        self.seed = seed

    def _alphabet(self) -> Alphabet:
        return Alphabet(self.alphabet, self.ambiguity)

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        X, y = list(X), np.asarray(y).astype(int)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise MedAIError("the training sequences hold a single class; a classifier needs at least two")
        if len(X) > MAX_RECORDS:
            raise MedAIError(f"the weighted-degree kernel SVM keeps an n x n kernel: {len(X)} training sequences "
                             f"are more than {MAX_RECORDS:,}; use the k-mer SVM (learner svm)")
        self.n_classes_ = int(self.classes_.max()) + 1
        degrees, shifts = parse_grid(self.degree, "degree", 1), parse_grid(self.shift, "shift", 0)
        grid = (float(self.C),) if self.C else C_GRID
        codes = encode(X, self._alphabet())
        self.length_ = codes.shape[1]
        shifts = tuple(s for s in shifts if s < self.length_) or (0,)
        raw = cross_kernels(codes, codes, degrees, shifts, symmetric=True)
        diag = np.einsum("dsii->dsi", raw).copy()
        folds = int(min(self.inner_folds, np.bincount(y)[self.classes_].min()))
        if folds < 2:
            raise MedAIError("the SVM's probabilities are calibrated on held-out folds: each class needs at least "
                             "two training sequences")
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(np.zeros(len(y)), y))
        self.search_, best = [], None
        for i, degree in enumerate(degrees):
            for j, shift in enumerate(shifts):
                K = normalise(raw[i, j].astype(np.float64), diag[i, j], diag[i, j])
                for C in grid:
                    scores, correct = self._out_of_fold(K, y, C, splits)
                    row = {"degree": degree, "shift": shift, "C": C, "accuracy": float(np.mean(correct))}
                    self.search_.append(row)
                    rank = (round(row["accuracy"], 4), -shift, -degree, -abs(np.log10(C)))
                    if best is None or rank > best[0]:
                        best = (rank, row, scores, K)
        _, row, scores, K = best
        self.degree_, self.shift_, self.C_ = row["degree"], row["shift"], row["C"]
        self.svm_ = self._svm(self.C_).fit(K, y)
        self.calibrator_ = LogisticRegression(C=100.0, max_iter=5000).fit(scores, y)
        support = self.svm_.support_
        self.support_codes_ = codes[support]
        self.support_diag_ = diag[degrees.index(self.degree_), shifts.index(self.shift_)][support].astype(np.float64)
        self.n_fit_ = len(y)
        return self

    def _svm(self, C: float):
        from sklearn.svm import SVC

        return SVC(kernel="precomputed", C=C, decision_function_shape="ovo", random_state=self.seed)

    @staticmethod
    def _scores(svm, K) -> np.ndarray:
        scores = svm.decision_function(K)
        return scores[:, None] if scores.ndim == 1 else scores

    def _out_of_fold(self, K, y, C, splits) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold decision values and whether each record was predicted right."""
        scores, correct = None, np.zeros(len(y), dtype=bool)
        for train, test in splits:
            svm = self._svm(C).fit(K[np.ix_(train, train)], y[train])
            fold = self._scores(svm, K[np.ix_(test, train)])
            scores = np.zeros((len(y), fold.shape[1])) if scores is None else scores
            scores[test] = fold
            correct[test] = svm.predict(K[np.ix_(test, train)]) == y[test]
        return scores, correct

    def kernel_to_support(self, X) -> np.ndarray:
        """The normalised kernel between ``X`` and the support sequences, as columns of the training kernel."""
        codes = encode(list(X), self._alphabet(), self.length_)
        raw = cross_kernels(codes, self.support_codes_, [self.degree_], [self.shift_])[0, 0].astype(np.float64)
        diag = self_kernels(codes, [self.degree_], [self.shift_])[0, 0].astype(np.float64)
        K = np.zeros((len(codes), self.n_fit_))
        K[:, self.svm_.support_] = normalise(raw, diag, self.support_diag_)
        return K

    def predict_proba(self, X) -> np.ndarray:
        scores = self._scores(self.svm_, self.kernel_to_support(X))
        proba = np.zeros((scores.shape[0], self.n_classes_))
        proba[:, self.calibrator_.classes_.astype(int)] = self.calibrator_.predict_proba(scores)
        return proba

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    def describe(self) -> str:
        shift = f", shifts up to {self.shift_}" if self.shift_ else ""
        return f"SVM on the weighted-degree kernel (degree {self.degree_}{shift}; calibrated)"
