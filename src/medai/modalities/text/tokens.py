"""Tokens with character offsets, BIO tags and the spans they encode - the shared ground of every entity learner.

The tokenizer is language-agnostic (Unicode word characters, one token per punctuation mark), so a span
annotated on characters almost always starts and ends on a token boundary; where it does not, the reader
says so and the span is aligned to the tokens it covers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
SENTENCE_END = {".", "!", "?", ";"}
ABBREVIATIONS = {"dr", "dra", "mr", "mrs", "ms", "sr", "sra", "jr", "st", "apt", "prof", "no", "nº", "vs", "etc",
                 "fig", "ave", "rd", "blvd", "dña", "d"}


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text``: runs of digits, runs of letters, and single punctuation marks, with offsets."""
    return [Token(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def segments(tokens: list[Token], text: str, max_len: int = 200, keep_together=()) -> list[tuple[int, int]]:
    """Token ranges ``[a, b)`` of sentence-like segments: a break at a blank line, after a sentence end followed
    by a line break or an upper-case letter (not after a single letter, a known abbreviation or a short capitalised
    word such as "Avda."), and after every ``max_len`` tokens (a single line break is no
    boundary: addresses span lines). ``keep_together`` lists ``(first, last)``
    token ranges (gold spans) that no break may cut."""
    protected = set()
    for first, last in keep_together:
        protected.update(range(first, last))
    out, start = [], 0
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        if last:
            break
        nxt = tokens[i + 1]
        gap = text[token.end:nxt.start]
        before = tokens[i - 1].text if i else ""
        abbreviation = token.text == "." and (len(before) == 1 or before.lower() in ABBREVIATIONS
                                              or _short_title(before))
        boundary = gap.count("\n") >= 2 or (token.text in SENTENCE_END and not abbreviation and (
            "\n" in gap or (gap and nxt.text[:1].isupper())))
        if (boundary or i + 1 - start >= max_len) and i not in protected:
            out.append((start, i + 1))
            start = i + 1
    if tokens:
        out.append((start, len(tokens)))
    return out


def _short_title(word: str) -> bool:
    """A capitalised word of two to four letters ("Avda", "Ctra", "Gral", "Av", "Pza"): before a period it is
    far more often an abbreviation inside a name or an address than the last word of a sentence, and a missed
    sentence end only makes a segment longer, while a false one cuts a mention in two."""
    return 2 <= len(word) <= 4 and word.isalpha() and word[0].isupper() and word[1:].islower()


def spans_to_bio(tokens: list[Token], spans) -> tuple[list[str], list[str]]:
    """BIO tags for ``tokens`` from ``(start, end, label)`` spans, and a note for each span that does not fall
    on token boundaries (it is aligned to the tokens it overlaps)."""
    tags = ["O"] * len(tokens)
    notes = []
    for start, end, label in sorted(spans):
        inside = [i for i, t in enumerate(tokens) if t.start < end and t.end > start]
        if not inside:
            notes.append(f"span {start}-{end} covers no token")
            continue
        if tokens[inside[0]].start != start or tokens[inside[-1]].end != end:
            notes.append(f"span {start}-{end} ({label}) does not fall on token boundaries")
        if any(tags[i] != "O" for i in inside):
            notes.append(f"span {start}-{end} ({label}) overlaps another span; kept the first")
            continue
        tags[inside[0]] = f"B-{label}"
        for i in inside[1:]:
            tags[i] = f"I-{label}"
    return tags, notes


def bio_to_spans(tokens: list[Token], tags: list[str]) -> list[tuple[int, int, str]]:
    """``(start, end, label)`` spans from BIO (or IOB1/BIOES) tags; an ``I-`` after another type or after
    ``O`` starts a new span (the conlleval convention)."""
    spans, current = [], None
    for token, tag in zip(tokens, tags, strict=True):
        prefix, _, label = tag.partition("-")
        if tag == "O" or not label:
            if current:
                spans.append(tuple(current))
            current = None
            continue
        if prefix in ("B", "S") or current is None or current[2] != label:
            if current:
                spans.append(tuple(current))
            current = [token.start, token.end, label]
        else:
            current[1] = token.end
        if prefix in ("E", "S"):
            spans.append(tuple(current))
            current = None
    if current:
        spans.append(tuple(current))
    return spans


def repair_bio(tags: list[str]) -> tuple[list[str], int]:
    """Tags with every ``I-X`` that does not continue an ``X`` turned into ``B-X``; and how many were fixed."""
    out, fixed, previous = [], 0, "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag, fixed = "B-" + tag[2:], fixed + 1
        out.append(tag)
        previous = tag
    return out, fixed
