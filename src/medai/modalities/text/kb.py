"""A knowledge base of entity mentions in the project's database: one row per (corpus, document, mention, span,
type, concept id, negated), written by ``medai kb build`` and read by ``medai kb query``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Boolean, Integer, String, Text, delete, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from medai.db import Base, UTCDateTime, get_engine, session_factory
from medai.errors import MedAIError


class KBMention(Base):
    __tablename__ = "text_kb_mentions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kb: Mapped[str] = mapped_column(String(100), index=True)
    document: Mapped[str] = mapped_column(String(300), index=True)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    mention: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(100))
    concept: Mapped[str | None] = mapped_column(String(200), index=True, nullable=True)
    link: Mapped[str] = mapped_column(String(20))  # gold, exact, embedding or none
    negated: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _sessions(url: str | None = None):
    engine = get_engine(url)
    KBMention.__table__.create(engine, checkfirst=True)
    return session_factory(url)


def build(corpus_path: Path, name: str, *, model=None, linker_data: Path | None = None, fmt: str | None = None,
          url: str | None = None) -> dict:
    """Read a corpus (BRAT, CoNLL, PubTator, or a folder of .txt files with ``model``), find its mentions (the
    entity model's, else the corpus's gold spans), link them (a linker trained on ``linker_data``, else the gold
    concept ids), mark negated ones, and replace the knowledge base ``name`` with the rows in one transaction."""
    from medai.modalities.text.corpora import Document, detect_format, read_corpus, read_text_file
    from medai.modalities.text.linking import linker_from_corpus, negated

    corpus_path = Path(corpus_path)
    if not corpus_path.exists():
        raise MedAIError(f"{corpus_path} does not exist")
    if fmt or detect_format(corpus_path):
        documents = read_corpus(corpus_path, fmt).documents
    elif corpus_path.is_dir() and model is not None:
        documents = [Document(str(p.relative_to(corpus_path)), read_text_file(p)) for p in sorted(
            corpus_path.rglob("*.txt"))]
    else:
        raise MedAIError(f"{corpus_path} is not a BRAT/CoNLL/PubTator corpus; a folder of plain .txt files needs "
                         "--model (an entity model) to find mentions")
    if not documents:
        raise MedAIError(f"{corpus_path} holds no documents")
    linker = linker_from_corpus(linker_data) if linker_data else None
    predicted = model.scores([d.text for d in documents]) if model is not None else None
    rows, now = [], datetime.now(UTC)
    for i, doc in enumerate(documents):
        spans = ([(s["start"], s["end"], s["label"], None) for s in predicted[i]] if predicted is not None
                 else [(s.start, s.end, s.label, s.concept) for s in doc.spans])
        flags = negated(doc.text, [(a, b, t) for a, b, t, _ in spans])
        links = linker.predict([doc.text[a:b] for a, b, _, _ in spans]) if linker else [
            (c, 1.0, "gold" if c else "none") for *_, c in spans]
        for (start, end, label, _), flag, (concept, _, how) in zip(spans, flags, links, strict=True):
            rows.append(KBMention(kb=name, document=doc.id[:300], start=start, end=end, mention=doc.text[start:end],
                                  type=label, concept=concept, link=how, negated=flag, created_at=now))
    with _sessions(url)() as session, session.begin():
        session.execute(delete(KBMention).where(KBMention.kb == name))
        session.add_all(rows)
    return {"kb": name, "documents": len(documents), "mentions": len(rows),
            "linked": sum(r.concept is not None for r in rows), "negated": sum(r.negated for r in rows)}


def query(term: str, name: str | None = None, limit: int = 100, url: str | None = None) -> list[dict]:
    """Mentions whose concept id is ``term``, else whose text contains it (case-insensitive)."""
    with _sessions(url)() as session:
        base = select(KBMention)
        if name:
            base = base.where(KBMention.kb == name)
        rows = session.scalars(base.where(KBMention.concept == term).limit(limit)).all()
        if not rows:
            like = f"%{term.lower()}%"
            rows = session.scalars(base.where(or_(KBMention.mention.ilike(like), KBMention.concept.ilike(like)))
                                   .limit(limit)).all()
    return [{"kb": r.kb, "document": r.document, "start": r.start, "end": r.end, "mention": r.mention,
             "type": r.type, "concept": r.concept, "link": r.link, "negated": r.negated} for r in rows]
