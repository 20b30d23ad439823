"""Entity recognition as sequence labelling: documents -> tokens -> BIO tags -> character spans.

:class:`EntityTagger` is what every entity learner shares (scikit-learn conventions: ``fit(texts, spans)``,
``predict(texts)`` -> per document a list of ``{"start", "end", "label", "text"}``); :class:`CRFTagger` is a
linear-chain CRF over rich token features (CRFsuite through python-crfsuite, L-BFGS with elastic-net
regularisation). Its weights are CRFsuite's own binary model file, which holds numbers and strings only.
"""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np
from sklearn.base import BaseEstimator

from medai.modalities.text.tokens import Token, bio_to_spans, segments, spans_to_bio, tokenize

MAX_SEGMENT = 150


class EntityTagger(BaseEstimator):
    """Base of the entity learners: splits documents into token segments and turns tags back into spans."""

    max_segment = MAX_SEGMENT

    def _sequences(self, texts, spans=None):
        """Per segment: (document index, tokens, tags or None); and per-document alignment notes."""
        out, notes = [], []
        for d, text in enumerate(texts):
            tokens = tokenize(text)
            tags, keep, doc_notes = None, (), []
            if spans is not None:
                tags, doc_notes = spans_to_bio(tokens, spans[d])
                keep = [(i, j) for i, j in _token_ranges(tokens, spans[d])]
            for a, b in segments(tokens, text, self.max_segment, keep):
                out.append((d, tokens[a:b], None if tags is None else tags[a:b], text))
            notes.append(doc_notes)
        return out, notes

    def fit(self, X, y, X_val=None, y_val=None):
        texts, spans = list(X), [list(s) for s in y]
        sequences, notes = self._sequences(texts, spans)
        self.alignment_notes_ = sum(len(n) for n in notes)
        labels = sorted({s[2] for doc in spans for s in doc})
        self.labels_ = labels
        val = None
        if X_val is not None and y_val is not None and len(X_val):
            val = self._sequences(list(X_val), [list(s) for s in y_val])[0]
        self._fit_sequences(sequences, val)
        return self

    def predict(self, X) -> list[list[dict]]:
        texts = list(X)
        sequences, _ = self._sequences(texts)
        tags = self._predict_sequences(sequences) if sequences else []
        out: list[list[dict]] = [[] for _ in texts]
        for (d, tokens, _, text), seq_tags in zip(sequences, tags, strict=True):
            for start, end, label in bio_to_spans(tokens, seq_tags):
                out[d].append({"start": start, "end": end, "label": label, "text": text[start:end]})
        return out

    def _fit_sequences(self, sequences, val) -> None:
        raise NotImplementedError

    def _predict_sequences(self, sequences) -> list[list[str]]:
        raise NotImplementedError


def _token_ranges(tokens: list[Token], spans) -> list[tuple[int, int]]:
    starts = np.array([t.start for t in tokens])
    ends = np.array([t.end for t in tokens])
    out = []
    for start, end, _ in spans:
        inside = np.flatnonzero((starts < end) & (ends > start))
        if len(inside):
            out.append((int(inside[0]), int(inside[-1])))
    return out


# -- token features --------------------------------------------------------------------------------------

_SHAPE = [(re.compile(r"[A-ZÀ-ÖØ-Þ]"), "X"), (re.compile(r"[a-zß-öø-ÿ]"), "x"), (re.compile(r"\d"), "d")]


def shape(word: str) -> str:
    out = []
    for ch in word:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)[:6]


def sequence_features(tokens: list[Token], text: str, window: int = 2) -> list[list[str]]:
    """CRFsuite features of every token of one segment: the word, its affixes and shape, its neighbours, and
    where it sits on its line (the first word of the line names a form field such as ``Nombre:``)."""
    words = [t.text for t in tokens]
    lower = [w.lower() for w in words]
    shapes = [shape(w) for w in words]
    line_head, head, first = [], "", True
    for i, token in enumerate(tokens):
        if i == 0 or "\n" in text[tokens[i - 1].end:token.start]:
            head, first = lower[i], True
        else:
            first = False
        line_head.append((head, first))
    feats = []
    n = len(tokens)
    for i, token in enumerate(tokens):
        w, lw = words[i], lower[i]
        f = ["b", f"w={lw}", f"p2={lw[:2]}", f"p3={lw[:3]}", f"s2={lw[-2:]}", f"s3={lw[-3:]}", f"s4={lw[-4:]}",
             f"sh={shapes[i]}", f"len={min(len(w), 12)}", f"l0={line_head[i][0]}"]
        if w[:1].isupper():
            f.append("title")
        if w.isupper():
            f.append("upper")
        if w.isdigit():
            f.append(f"digits={len(w)}")
        if line_head[i][1]:
            f.append("line_start")
        gap_before = text[tokens[i - 1].end:token.start] if i else ""
        if i and not gap_before:
            f.append("attached")
        for o in range(-window, window + 1):
            if o == 0:
                continue
            j = i + o
            if 0 <= j < n:
                f += [f"w{o}={lower[j]}", f"sh{o}={shapes[j]}"]
                if abs(o) == 1:
                    f += [f"s3{o}={lower[j][-3:]}", f"wb{o}={lower[j]}|{lw}" if o < 0 else f"wb{o}={lw}|{lower[j]}"]
            else:
                f.append(f"pad{o}")
        feats.append(f)
    return feats


class CRFTagger(EntityTagger):
    """Linear-chain CRF (CRFsuite, L-BFGS) over word, affix, shape, context and line-position features."""

    def __init__(self, c1: float = 0.05, c2: float = 0.01, max_iterations: int = 150, window: int = 2,
                 min_freq: int = 1, verbose: bool = False):
        self.c1 = c1
        self.c2 = c2
        self.max_iterations = max_iterations
        self.window = window
        self.min_freq = min_freq
        self.verbose = verbose

    def _fit_sequences(self, sequences, val) -> None:
        import pycrfsuite

        trainer = pycrfsuite.Trainer(verbose=self.verbose)
        for _, tokens, tags, text in sequences:
            trainer.append(sequence_features(tokens, text, self.window), tags)
        trainer.set_params({"c1": self.c1, "c2": self.c2, "max_iterations": self.max_iterations,
                            "feature.possible_transitions": True, "feature.minfreq": self.min_freq})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.crfsuite")
            trainer.train(path)
            with open(path, "rb") as handle:
                self.model_bytes_ = handle.read()
        self._tagger = None

    def _open(self):
        import pycrfsuite

        if getattr(self, "_tagger", None) is None:
            fd, path = tempfile.mkstemp(suffix=".crfsuite")
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.model_bytes_)
            tagger = pycrfsuite.Tagger()
            tagger.open(path)
            os.unlink(path)  # the tagger has read it into memory (mmap of an unlinked file stays valid)
            self._tagger = tagger
        return self._tagger

    def _predict_sequences(self, sequences) -> list[list[str]]:
        tagger = self._open()
        return [tagger.tag(sequence_features(tokens, text, self.window)) for _, tokens, _, text in sequences]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_tagger", None)
        return state
