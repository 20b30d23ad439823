"""Entity linking (normalising each mention to a concept id) and negation of mentions.

:class:`ConceptLinker` learns a dictionary of the training mentions' names and their concept ids (MeSH/OMIM in
NCBI Disease); a mention whose normalised name is in the dictionary takes its most frequent concept, any other
takes the concept of the most similar dictionary name by MiniLM embedding (cosine, when above ``min_similarity``).
:func:`negated` marks mentions inside a negation's scope with NegEx (negspacy, clinical termsets).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from medai.errors import MedAIError


def normalise(name: str) -> str:
    name = re.sub(r"[^\w\s]", " ", name.lower())
    words = [w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w for w in name.split()]
    return " ".join(words)


class ConceptLinker(BaseEstimator):
    def __init__(self, min_similarity: float = 0.6, use_embeddings: bool = True):
        self.min_similarity = min_similarity
        self.use_embeddings = use_embeddings

    def fit(self, mentions: list[str], concepts: list[str]):
        table: dict[str, Counter] = defaultdict(Counter)
        for mention, concept in zip(mentions, concepts, strict=True):
            if concept:
                table[normalise(mention)][concept] += 1
        if not table:
            raise MedAIError("the linker needs mentions with concept ids (e.g. a PubTator file with ids)")
        self.names_ = sorted(table)
        self.concepts_ = [table[n].most_common(1)[0][0] for n in self.names_]
        self.index_ = {n: c for n, c in zip(self.names_, self.concepts_, strict=True)}
        self.vectors_ = self._embed(self.names_) if self.use_embeddings else None
        return self

    def _embed(self, names: list[str]) -> np.ndarray | None:
        try:
            from medai.modalities.text.embeddings import embed
        except ImportError:
            return None
        return embed(names, max_length=64)

    def predict(self, mentions: list[str]) -> list[tuple[str | None, float, str]]:
        """Per mention: (concept id or None, similarity, how: ``exact``, ``embedding`` or ``none``)."""
        out: list = [None] * len(mentions)
        unknown = []
        for i, mention in enumerate(mentions):
            key = normalise(mention)
            if key in self.index_:
                out[i] = (self.index_[key], 1.0, "exact")
            else:
                unknown.append(i)
        if unknown and self.vectors_ is not None:
            vectors = self._embed([normalise(mentions[i]) for i in unknown])
            similarity = vectors @ self.vectors_.T
            best = similarity.argmax(axis=1)
            for row, i in enumerate(unknown):
                score = float(similarity[row, best[row]])
                out[i] = ((self.concepts_[best[row]], score, "embedding") if score >= self.min_similarity
                          else (None, score, "none"))
        return [o if o is not None else (None, 0.0, "none") for o in out]

    def to_json(self) -> dict:
        return {"names": self.names_, "concepts": self.concepts_, "min_similarity": self.min_similarity}

    @classmethod
    def from_json(cls, data: dict) -> ConceptLinker:
        linker = cls(min_similarity=data["min_similarity"])
        linker.names_, linker.concepts_ = data["names"], data["concepts"]
        linker.index_ = dict(zip(linker.names_, linker.concepts_, strict=True))
        linker.vectors_ = linker._embed(linker.names_)
        return linker


def linker_from_corpus(path: Path, fmt: str | None = None) -> ConceptLinker:
    from medai.modalities.text.corpora import read_corpus

    corpus = read_corpus(Path(path), fmt)
    spans = [s for d in corpus.documents for s in d.spans if s.concept]
    return ConceptLinker().fit([s.text for s in spans], [s.concept for s in spans])


def negated(text: str, spans: list[tuple[int, int, str]], language: str = "en") -> list[bool]:
    """Whether each span lies in the scope of a negation (NegEx through negspacy, clinical termsets)."""
    if not spans:
        return []
    try:
        from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)
    except ImportError as exc:
        raise MedAIError(f"negation needs {exc.name} (pip install 'medai[text]')") from None
    nlp = _negex_pipeline(language)
    doc = nlp.make_doc(text)
    ents, keep = [], []
    for i, (start, end, label) in enumerate(spans):
        span = doc.char_span(start, end, label=label, alignment_mode="expand")
        if span is not None and not any(span.start < e.end and e.start < span.end for e in ents):
            ents.append(span)
            keep.append(i)
    doc.ents = ents
    for _, component in nlp.pipeline:
        doc = component(doc)
    flags = [False] * len(spans)
    for i, ent in zip(keep, doc.ents, strict=False):
        flags[i] = bool(ent._.negex)
    return flags


_PIPELINES: dict[str, object] = {}


def _negex_pipeline(language: str):
    import spacy
    from negspacy.termsets import termset

    if language not in _PIPELINES:
        nlp = spacy.blank(language)
        nlp.add_pipe("sentencizer")
        nlp.add_pipe("negex", config={"neg_termset": termset("en_clinical").get_patterns()})
        _PIPELINES[language] = nlp
    return _PIPELINES[language]


def evaluate_linking(train: Path, dev: Path, ner_model: Path | None = None) -> dict:
    """Concept-level scores on ``dev``: per document, the set of concept ids found against the gold set (micro
    precision/recall/F1, the DNorm/TaggerOne protocol), with mentions from ``ner_model`` (end to end) or, without
    it, the gold mentions (normalisation alone)."""
    from medai.modalities.text.corpora import read_corpus

    linker = linker_from_corpus(train)
    documents = read_corpus(Path(dev)).documents
    if ner_model is not None:
        from medai.road import load_model

        model = load_model(ner_model)
        mentions = [[s["text"] for s in spans] for spans in model.scores([d.text for d in documents])]
        method = "CRF mentions + dictionary/embedding linker"
    else:
        mentions = [[s.text for s in d.spans] for d in documents]
        method = "gold mentions + dictionary/embedding linker"
    tp = fp = fn = 0
    for doc, names in zip(documents, mentions, strict=True):
        gold = {part for s in doc.spans if s.concept for part in re.split(r"[|+]", s.concept)}
        found = {part for concept, _, _ in linker.predict(names) if concept for part in re.split(r"[|+]", concept)}
        tp, fp, fn = tp + len(gold & found), fp + len(found - gold), fn + len(gold - found)
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"method": method, "precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4), "documents": len(documents)}


def save_linker(linker: ConceptLinker, path: Path) -> None:
    from medai.fsutil import atomic_write_text

    atomic_write_text(path, json.dumps(linker.to_json()))
