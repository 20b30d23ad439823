"""Span-annotated corpora: BRAT standoff (``.txt`` + ``.ann``), CoNLL/BIO token files and PubTator.

Every reader returns :class:`Document` objects (text + character spans) and a list of problems per document:
offsets beyond the text, offsets whose text differs from the annotation, overlapping gold spans, broken BIO
sequences. A problem is reported and the document kept (the span dropped or repaired), never silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from medai.errors import MedAIError
from medai.modalities.text.tokens import Token, bio_to_spans, repair_bio

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024  # one note or abstract; a larger file is refused with a clear error
BIO_TAG = re.compile(r"^(O|[BIES]-\S.*)$")
PUBTATOR_TITLE = re.compile(r"^([^|\t]+)\|t\|(.*)$")
PUBTATOR_ABSTRACT = re.compile(r"^([^|\t]+)\|a\|(.*)$")
CONLL_SUFFIXES = (".conll", ".conllu", ".bio", ".iob", ".iob2", ".bioes", ".tsv", ".tab", ".txt")


@dataclass
class Span:
    start: int
    end: int
    label: str
    text: str = ""
    concept: str | None = None

    def key(self) -> tuple[int, int, str]:
        return (self.start, self.end, self.label)

    def to_json(self) -> dict:
        out = {"start": self.start, "end": self.end, "label": self.label, "text": self.text}
        if self.concept:
            out["concept"] = self.concept
        return out


@dataclass
class Document:
    id: str
    text: str
    spans: list[Span] = field(default_factory=list)
    tokens: list[Token] | None = None  # fixed tokens (CoNLL input), else tokenized on demand

    def span_keys(self) -> list[tuple[int, int, str]]:
        return [s.key() for s in self.spans]


@dataclass
class Corpus:
    documents: list[Document]
    format: str
    source: str
    problems: dict[str, list[str]] = field(default_factory=dict)  # document id -> problems

    def report(self, limit: int = 3) -> list[str]:
        """One line per document with problems (at most ``limit`` problems shown each)."""
        lines = []
        for doc_id, problems in self.problems.items():
            more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
            lines.append(f"{doc_id}: {'; '.join(problems[:limit])}{more}")
        return lines


def read_text_file(path: Path, keep_bom: bool = False) -> str:
    """A UTF-8 text file (BOM allowed), or a clear error naming the file and the byte that is not UTF-8."""
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise MedAIError(f"{path} is {size / 1e6:.1f} MB; a single document may hold at most "
                         f"{MAX_DOCUMENT_BYTES // 2**20} MB")
    data = path.read_bytes()
    try:
        return data.decode("utf-8" if keep_bom else "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MedAIError(f"{path} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
                         "convert it to UTF-8") from None


# -- format detection ---------------------------------------------------------------------------------

def detect_format(path: Path) -> str | None:
    """``brat``, ``conll`` or ``pubtator`` when ``path`` is clearly one, else ``None``."""
    if path.is_dir():
        if next(path.rglob("*.ann"), None) is not None:
            return "brat"
        files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        if files and all(detect_format(p) == "pubtator" for p in files):
            return "pubtator"
        return None
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = [line.rstrip("\n") for _, line in zip(range(400), handle, strict=False)]
    except OSError:
        return None
    lines = [line for line in head if line.strip()]
    if not lines:
        return None
    if PUBTATOR_TITLE.match(lines[0]) and any(PUBTATOR_ABSTRACT.match(line) for line in lines[:3]):
        return "pubtator"
    if path.suffix.lower() in CONLL_SUFFIXES:
        rows = [line.split() for line in lines if not line.startswith("-DOCSTART-")]
        if rows and all(len(r) >= 2 and BIO_TAG.match(r[-1]) for r in rows):
            return "conll"
    return None


def read_corpus(path: Path, fmt: str | None = None, one_type: str | None = None) -> Corpus:
    """Read a span-annotated corpus in its format (detected unless ``fmt`` forces it). ``one_type`` merges every
    entity type into one (e.g. ``Disease``)."""
    path = Path(path)
    if not path.exists():
        raise MedAIError(f"{path} does not exist")
    fmt = fmt or detect_format(path)
    readers = {"brat": read_brat, "conll": read_conll, "pubtator": read_pubtator}
    if fmt not in readers:
        raise MedAIError(f"{path} is not a BRAT folder (.txt + .ann), a CoNLL/BIO file or a PubTator file"
                         + (f" (format {fmt!r} is unknown; use brat, conll or pubtator)" if fmt else ""))
    corpus = readers[fmt](path)
    if not corpus.documents:
        raise MedAIError(f"{path} holds no documents")
    if one_type:
        for doc in corpus.documents:
            for span in doc.spans:
                span.label = one_type
    return corpus


# -- BRAT ---------------------------------------------------------------------------------------------

def read_brat(path: Path) -> Corpus:
    root = Path(path)
    texts = sorted(root.rglob("*.txt")) if root.is_dir() else [root.with_suffix(".txt")]
    documents, problems = [], {}
    for txt in texts:
        doc_id = str(txt.relative_to(root).with_suffix("")) if root.is_dir() else txt.stem
        text = read_text_file(txt, keep_bom=True)  # BRAT offsets count a byte-order mark
        ann = txt.with_suffix(".ann")
        spans, issues = ([], ["no .ann file beside it: read as a document without entities"]) if not ann.exists() \
            else _brat_spans(ann, text)
        spans, overlaps = drop_overlaps(spans)
        issues += overlaps
        if not text.strip():
            issues.append("empty text")
        documents.append(Document(doc_id, text, spans))
        if issues:
            problems[doc_id] = issues
    return Corpus(documents, "brat", str(path), problems)


def _brat_spans(ann: Path, text: str) -> tuple[list[Span], list[str]]:
    spans, issues = [], []
    for number, line in enumerate(read_text_file(ann).splitlines(), 1):
        if not line.startswith("T"):
            continue  # relations, events, attributes, notes: not entities
        parts = line.split("\t")
        if len(parts) < 2:
            issues.append(f"line {number}: expected 'T<n>\\tTYPE START END\\tTEXT'")
            continue
        fields = parts[1].split(" ", 1)
        label = fields[0]
        fragments = []
        try:
            for piece in fields[1].split(";"):
                start, end = (int(x) for x in piece.split())
                fragments.append((start, end))
        except (ValueError, IndexError):
            issues.append(f"line {number}: offsets {parts[1]!r} are not 'START END'")
            continue
        start, end = fragments[0][0], fragments[-1][1]  # a discontinuous span is read as its extent
        if not 0 <= start < end <= len(text):
            issues.append(f"line {number}: span {start}-{end} ({label}) lies beyond the text ({len(text)} characters);"
                          " dropped")
            continue
        quoted = parts[2] if len(parts) > 2 else None
        if quoted is not None and len(fragments) == 1 and text[start:end] != quoted:
            issues.append(f"line {number}: text at {start}-{end} is {text[start:end][:30]!r}, the annotation says "
                          f"{quoted[:30]!r}")
        spans.append(Span(start, end, label, text[start:end]))
    return spans, issues


def drop_overlaps(spans: list[Span]) -> tuple[list[Span], list[str]]:
    """Spans without overlaps (identical duplicates merged; of two overlapping spans the longer one kept) and a
    note for each span left out."""
    kept: list[Span] = []
    notes = []
    seen = set()
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if span.key() in seen:
            continue
        clash = next((k for k in kept if k.start < span.end and span.start < k.end), None)
        if clash is not None:
            notes.append(f"overlapping gold spans {span.start}-{span.end} ({span.label}) and {clash.start}-{clash.end}"
                         f" ({clash.label}): kept the longer")
            continue
        kept.append(span)
        seen.add(span.key())
    return sorted(kept, key=lambda s: s.start), notes


# -- CoNLL / BIO ----------------------------------------------------------------------------------------

def read_conll(path: Path) -> Corpus:
    """Token-per-line files (token first, BIO tag last; blank line between sentences). ``-DOCSTART-`` lines
    separate documents; without them each sentence is a document."""
    files = sorted(p for p in Path(path).rglob("*") if p.is_file() and detect_format(p) == "conll") \
        if Path(path).is_dir() else [Path(path)]
    documents, problems = [], {}
    for file in files:
        text = read_text_file(file)
        has_docstart = "-DOCSTART-" in text
        blocks: list[list[list[tuple[str, str, int]]]] = [[]]
        sentence: list[tuple[str, str, int]] = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith("-DOCSTART-"):
                if sentence:
                    blocks[-1].append(sentence)
                sentence = []
                if blocks[-1]:
                    blocks.append([])
                continue
            if not line.strip():
                if sentence:
                    blocks[-1].append(sentence)
                    if not has_docstart:
                        blocks.append([])
                sentence = []
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            if len(fields) < 2:
                raise MedAIError(f"{file} line {number}: expected a token and a tag separated by a tab, got {line!r}")
            tag = fields[-1].strip()
            if not BIO_TAG.match(tag):
                raise MedAIError(f"{file} line {number}: {tag!r} is not a BIO tag (O, B-TYPE, I-TYPE)")
            sentence.append((fields[0], tag, number))
        if sentence:
            blocks[-1].append(sentence)
        stem = file.stem if len(files) == 1 else str(file.relative_to(path).with_suffix(""))
        for sentences in (b for b in blocks if b):
            doc_id = f"{stem}:{sentences[0][0][2]}"
            doc, issues = _conll_document(doc_id, sentences)
            documents.append(doc)
            if issues:
                problems[doc_id] = issues
    return Corpus(documents, "conll", str(path), problems)


def _conll_document(doc_id: str, sentences) -> tuple[Document, list[str]]:
    pieces, tokens, tags, issues = [], [], [], []
    offset = 0
    for sentence in sentences:
        raw = [tag for _, tag, _ in sentence]
        fixed_tags, fixed = repair_bio(raw)
        if fixed:
            issues.append(f"line {sentence[0][2]}: {fixed} I- tag(s) without a B- before them read as B-")
        for (word, _, _), tag in zip(sentence, fixed_tags, strict=True):
            tokens.append(Token(word, offset, offset + len(word)))
            tags.append(tag)
            pieces.append(word)
            offset += len(word) + 1
        # sentences end with a newline instead of the space
    text_parts, position = [], 0
    for sentence in sentences:
        words = [w for w, _, _ in sentence]
        line = " ".join(words)
        text_parts.append(line)
        position += len(line) + 1
    text = "\n".join(text_parts)
    spans = [Span(s, e, label, text[s:e]) for s, e, label in bio_to_spans(tokens, tags)]
    return Document(doc_id, text, spans, tokens), issues


# -- PubTator -----------------------------------------------------------------------------------------

def read_pubtator(path: Path) -> Corpus:
    files = sorted(p for p in Path(path).iterdir() if p.is_file()) if Path(path).is_dir() else [Path(path)]
    documents, problems = [], {}
    for file in files:
        lines = read_text_file(file).splitlines()
        current: dict | None = None
        seen: dict[str, int] = {}

        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if match := PUBTATOR_TITLE.match(line):
                _close_pubtator(current, seen, documents, problems)
                current = {"id": match.group(1), "title": match.group(2), "abstract": None, "spans": [], "issues": []}
            elif match := PUBTATOR_ABSTRACT.match(line):
                if current is None or current["id"] != match.group(1):
                    raise MedAIError(f"{file} line {number}: an abstract line without its title line before it")
                current["abstract"] = match.group(2)
            else:
                fields = line.split("\t")
                if current is None or len(fields) < 5 or fields[0] != current["id"]:
                    raise MedAIError(f"{file} line {number}: expected 'PMID\\tSTART\\tEND\\tMENTION\\tTYPE[\\tID]'")
                try:
                    start, end = int(fields[1]), int(fields[2])
                except ValueError:
                    raise MedAIError(f"{file} line {number}: offsets {fields[1]!r} {fields[2]!r} are not numbers")\
                        from None
                concept = fields[5].strip() if len(fields) > 5 else ""
                current["spans"].append((number, start, end, fields[3], fields[4], concept))
        _close_pubtator(current, seen, documents, problems)
    return Corpus(documents, "pubtator", str(path), problems)


def _close_pubtator(doc, seen: dict[str, int], documents: list[Document], problems: dict[str, list[str]]) -> None:
    if doc is None:
        return
    base = doc["id"]
    seen[base] = seen.get(base, 0) + 1
    doc_id = base if seen[base] == 1 else f"{base}#{seen[base]}"
    text = doc["title"] + ("\n" + doc["abstract"] if doc["abstract"] is not None else "")
    issues = list(doc["issues"])
    if seen[base] > 1:
        issues.append(f"document {base} appears {seen[base]} times; this copy is read as {doc_id}")
    spans = []
    for number, start, end, mention, label, concept in doc["spans"]:
        if not 0 <= start < end <= len(text):
            issues.append(f"line {number}: span {start}-{end} lies beyond the text ({len(text)} characters); dropped")
            continue
        if text[start:end] != mention.rstrip():
            issues.append(f"line {number}: text at {start}-{end} is {text[start:end][:30]!r}, the annotation says "
                          f"{mention[:30]!r}")
        spans.append(Span(start, end, label, text[start:end], concept or None))
    spans, overlaps = drop_overlaps(spans)
    documents.append(Document(doc_id, text, spans))
    if issues or overlaps:
        problems[doc_id] = issues + overlaps
