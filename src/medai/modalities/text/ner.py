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

from medai.errors import MedAIError
from medai.modalities.text.tokens import Token, bio_to_spans, segments, spans_to_bio, tokenize

MAX_SEGMENT = 150
LAYOUT_SHARE = 0.05
SHORT_FORM_END = (")", ";", ",")  # "dystrophy (DMD)", "syndrome (SJS; ...)", "(SJS, ...)"


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
        if getattr(self, "case_copies", False):
            texts, spans = with_case_copies(texts, spans)
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
        found: list[list[tuple[int, int, str]]] = [[] for _ in texts]
        for (d, tokens, _, _), seq_tags in zip(sequences, tags, strict=True):
            found[d] += bio_to_spans(tokens, seq_tags)
        if getattr(self, "propagate", False):
            found = [propagate_mentions(text, spans) for text, spans in zip(texts, found, strict=True)]
        return [[{"start": a, "end": b, "label": label, "text": text[a:b]} for a, b, label in spans]
                for text, spans in zip(texts, found, strict=True)]

    def _fit_sequences(self, sequences, val) -> None:
        raise NotImplementedError

    def _predict_sequences(self, sequences) -> list[list[str]]:
        raise NotImplementedError


def with_case_copies(texts: list[str], spans: list[list]) -> tuple[list[str], list[list]]:
    """The documents and, after them, a lower-cased copy of every document that has capitals (same spans; a
    document whose length lower-casing would change is not copied): names and places typed without capitals
    ("patricia desrosiers", "kiel") are then tagged by their words and context, not only by their shape."""
    out_texts, out_spans = list(texts), list(spans)
    for text, doc in zip(texts, spans, strict=True):
        lower = text.lower()
        if lower != text and len(lower) == len(text):
            out_texts.append(lower)
            out_spans.append(list(doc))
    return out_texts, out_spans


def _token_ranges(tokens: list[Token], spans) -> list[tuple[int, int]]:
    starts = np.array([t.start for t in tokens])
    ends = np.array([t.end for t in tokens])
    out = []
    for start, end, _ in spans:
        inside = np.flatnonzero((starts < end) & (ends > start))
        if len(inside):
            out.append((int(inside[0]), int(inside[-1])))
    return out


def propagate_mentions(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Document-level consistency: a short form defined right after a found mention ("... dystrophy (DMD)", also
    "(SJS; ...)" and "(SJS, ...)") gets the mention's label, and every other occurrence, on token boundaries, of a
    name found in this document gets the same label unless it overlaps a span already found. Only distinctive
    names spread: several tokens, or one token with a capital letter (not a lone number or a lower-case common
    word such as "mujer").
    Returns the spans sorted by start."""
    tokens = tokenize(text)
    spans = sorted(spans)
    taken = np.zeros(len(text) + 1, dtype=bool)
    for start, end, _ in spans:
        taken[start:end] = True
    index = {t.start: i for i, t in enumerate(tokens)}
    for start, end, label in list(spans):
        i = next((k for k in range(index.get(start, len(tokens)), len(tokens)) if tokens[k].start >= end), None)
        if i is not None and i + 2 < len(tokens) and tokens[i].text == "(" \
                and tokens[i + 2].text in SHORT_FORM_END:
            short = tokens[i + 1]
            if 1 < len(short.text) <= 10 and any(c.isupper() for c in short.text) \
                    and not taken[short.start:short.end].any():
                spans.append((short.start, short.end, label))
                taken[short.start:short.end] = True
    names: dict[tuple[str, ...], str] = {}
    for start, end, label in spans:
        names.setdefault(tuple(t.text for t in tokenize(text[start:end])), label)
    words = [t.text for t in tokens]
    for name, label in sorted(names.items(), key=lambda item: -len(item[0])):
        if not _distinctive(name):
            continue
        n = len(name)
        for i in range(len(tokens) - n + 1):
            if tuple(words[i:i + n]) == name:
                start, end = tokens[i].start, tokens[i + n - 1].end
                if not taken[start:end].any():
                    spans.append((start, end, label))
                    taken[start:end] = True
    return sorted(set(spans))


def _distinctive(name: tuple[str, ...]) -> bool:
    has_letter = any(c.isalpha() for word in name for c in word)
    return has_letter and (len(name) > 1 or any(c.isupper() for c in name[0]))


class Lexicon:
    """The names of the training mentions as lower-cased token tuples with their most frequent label; tags a
    token sequence by greedy longest match (``B-label``/``I-label``/``O``) - a gazetteer feature for the CRF."""

    def __init__(self, entries: dict[tuple[str, ...], str]):
        self.entries = entries
        self.longest = max(map(len, entries), default=0)

    @classmethod
    def from_sequences(cls, sequences) -> Lexicon:
        """From ``(tokens, tags)`` pairs: every tagged mention's words."""
        from collections import Counter

        counts: dict[tuple[str, ...], Counter] = {}
        for tokens, tags in sequences:
            for first, last, label in _tag_ranges(tags):
                counts.setdefault(tuple(t.text.lower() for t in tokens[first:last + 1]), Counter())[label] += 1
        return cls({name: c.most_common(1)[0][0] for name, c in counts.items() if len(name) <= 8})

    def tags(self, lower: list[str]) -> list[str]:
        out, i = ["O"] * len(lower), 0
        while i < len(lower):
            for n in range(min(self.longest, len(lower) - i), 0, -1):
                label = self.entries.get(tuple(lower[i:i + n]))
                if label:
                    out[i:i + n] = [f"B-{label}"] + [f"I-{label}"] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        return out

    def to_json(self) -> list:
        return [[list(name), label] for name, label in self.entries.items()]

    @classmethod
    def from_json(cls, items) -> Lexicon:
        return cls({tuple(name): label for name, label in items})


def _tag_ranges(tags: list[str]) -> list[tuple[int, int, str]]:
    """``(first, last, label)`` token ranges of the mentions in BIO ``tags``."""
    out, current = [], None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, label = tag.partition("-")
        if current and (prefix != "I" or label != current[2]):
            out.append(tuple(current))
            current = None
        if prefix in ("B", "I") and current is None:
            current = [i, i, label]
        elif current:
            current[1] = i
    return out


def to_bioes(tags: list[str]) -> list[str]:
    """BIO tags rewritten in BIOES (IOBES): a one-token mention is ``S-``, a mention's last token ``E-``. The
    CRF then learns where mentions end as well as where they start, which separates adjacent mentions of one
    type (a house number, then the street) and mentions that stop at a line break."""
    out = list(tags)
    for first, last, label in _tag_ranges(tags):
        if first == last:
            out[first] = f"S-{label}"
        else:
            out[first], out[last] = f"B-{label}", f"E-{label}"
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


def sequence_features(tokens: list[Token], text: str, window: int = 2, lexicon: Lexicon | None = None,
                      layout: bool = False) -> list[list[str]]:
    """CRFsuite features of every token of one segment: the word, its affixes and shape, its neighbours, where
    it sits on its line (the first word of the line names a form field such as ``Nombre:``), and with a
    ``lexicon`` the gazetteer tag of the token and of its neighbours. With ``layout``, where the line breaks
    fall around the token (last word of its line, a break before or after a neighbour), the first word of the
    line above and of the segment, and whether the line is indented: in forms, letters and address blocks a
    name often ends at a line break and the line above says what the line holds."""
    words = [t.text for t in tokens]
    lower = [w.lower() for w in words]
    lex = lexicon.tags(lower) if lexicon is not None and lexicon.entries else None
    shapes = [shape(w) for w in words]
    line_head, head, first = [], "", True
    above, previous_head, indented = [], "pad", []
    for i, token in enumerate(tokens):
        if i == 0 or "\n" in text[tokens[i - 1].end:token.start]:
            if i:
                previous_head = head
            head, first = lower[i], True
            lead = text[text.rfind("\n", 0, token.start) + 1:token.start]
            indent = bool(lead) and lead.isspace()
        else:
            first = False
        line_head.append((head, first))
        above.append(previous_head)
        indented.append(indent)
    breaks = [i + 1 < len(tokens) and "\n" in text[token.end:tokens[i + 1].start] for i, token in enumerate(tokens)]
    segment_head = lower[0] if lower else ""
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
        if layout:
            f += [f"l-1={above[i]}", f"seg0={segment_head}"]
            if breaks[i]:
                f.append("line_end")
            if indented[i]:
                f.append("indented")
            if i + 1 < n and breaks[i + 1]:
                f.append("line_end+1")
            if i and line_head[i - 1][1]:
                f.append("line_start-1")
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
        if lex is not None:
            f += [f"lex={lex[i]}", f"lex-1={lex[i - 1] if i else 'pad'}",
                  f"lex+1={lex[i + 1] if i + 1 < n else 'pad'}"]
        feats.append(f)
    return feats


class CRFTagger(EntityTagger):
    """Linear-chain CRF (CRFsuite, L-BFGS) over word, affix, shape, context and line-position features; with
    ``lexicon``, gazetteer features from the training mentions (on the training documents themselves the
    gazetteer of the other ``lexicon_folds`` folds, so that the CRF learns how far an unseen text can trust it);
    with ``propagate``, document-level consistency of the predicted mentions (:func:`propagate_mentions`); with
    ``layout``, the line-layout features of :func:`sequence_features` (``"auto"``, the default: when at least
    ``LAYOUT_SHARE`` of the training documents have three lines or more - forms, letters, address blocks - and not
    for one-paragraph texts such as title + abstract); ``scheme`` ``bioes`` trains on BIOES tags instead of BIO;
    ``clusters`` (k-means sizes, e.g. ``(64, 512)``) adds the cluster ids of each token's MiniLM contextual vector
    and of its neighbours (:mod:`medai.modalities.text.token_clusters`), centroids fitted on the training tokens;
    ``case_copies`` trains on a lower-cased copy of every document besides the document (:func:`with_case_copies`)."""

    def __init__(self, c1: float = 0.05, c2: float = 0.01, max_iterations: int = 150, window: int = 2,
                 min_freq: int = 1, lexicon: bool = False, lexicon_folds: int = 5, propagate: bool = True,
                 scheme: str = "bio", layout: bool | str = "auto", clusters: tuple = (), case_copies: bool = False,
                 verbose: bool = False):
        self.c1 = c1
        self.c2 = c2
        self.max_iterations = max_iterations
        self.window = window
        self.min_freq = min_freq
        self.lexicon = lexicon
        self.lexicon_folds = lexicon_folds
        self.propagate = propagate
        self.scheme = scheme
        self.layout = layout
        self.clusters = clusters
        self.case_copies = case_copies
        self.verbose = verbose

    def _fit_sequences(self, sequences, val) -> None:
        import pycrfsuite

        if self.scheme not in ("bio", "bioes"):
            raise MedAIError(f"CRF tagging scheme {self.scheme!r}: choose bio or bioes")
        if self.layout == "auto":
            texts = {d: text for d, _, _, text in sequences}
            self.layout_ = bool(texts) and \
                sum(t.count("\n") >= 2 for t in texts.values()) >= LAYOUT_SHARE * len(texts)
        elif isinstance(self.layout, bool):
            self.layout_ = self.layout
        else:
            raise MedAIError(f"CRF layout {self.layout!r}: choose true, false or auto")
        self.lexicon_ = None
        lexicons = {}
        if self.lexicon:
            pairs = [(d, tokens, tags) for d, tokens, tags, _ in sequences]
            self.lexicon_ = Lexicon.from_sequences([(t, g) for _, t, g in pairs])
            for k in range(self.lexicon_folds):
                lexicons[k] = Lexicon.from_sequences([(t, g) for d, t, g in pairs if d % self.lexicon_folds != k])
        self.clusters_ = None
        extra = [[] for _ in sequences]
        if self.clusters:
            from medai.modalities.text.token_clusters import TokenClusters, word_vectors

            vectors = word_vectors([[t.text for t in tokens] for _, tokens, _, _ in sequences])
            self.clusters_ = TokenClusters.fit(vectors, tuple(self.clusters))
            extra = [self.clusters_.features(v) for v in vectors]
        trainer = pycrfsuite.Trainer(verbose=self.verbose)
        for (d, tokens, tags, text), more in zip(sequences, extra, strict=True):
            lexicon = lexicons.get(d % self.lexicon_folds) if lexicons else None
            trainer.append(_join(sequence_features(tokens, text, self.window, lexicon, self.layout_), more),
                           to_bioes(tags) if self.scheme == "bioes" else tags)
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
        lexicon = getattr(self, "lexicon_", None)
        layout = getattr(self, "layout_", False)
        clusters = getattr(self, "clusters_", None)
        extra = [[] for _ in sequences]
        if clusters is not None:
            from medai.modalities.text.token_clusters import word_vectors

            extra = [clusters.features(v) for v in word_vectors([[t.text for t in s[1]] for s in sequences])]
        return [tagger.tag(_join(sequence_features(tokens, text, self.window, lexicon, layout), more))
                for (_, tokens, _, text), more in zip(sequences, extra, strict=True)]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_tagger", None)
        return state


def _join(features: list[list[str]], more: list[list[str]]) -> list[list[str]]:
    """Each token's features with the extra ones of the same token (none when ``more`` is empty)."""
    return [f + m for f, m in zip(features, more, strict=True)] if more else features
