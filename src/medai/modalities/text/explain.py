"""Explanations of text predictions as highlighted spans (JSON) and HTML.

- TF-IDF models: the n-grams that pushed the prediction most (tf-idf value x weight), highlighted where the word
  n-grams occur in the text.
- Networks (recurrent, embedding, transformer): occlusion - each word (or window of words, for long texts) is
  removed in turn and the drop in the predicted output's score is its attribution.
- Entity models: the predicted spans themselves.
"""

from __future__ import annotations

import html
import re
from typing import Any

import numpy as np

MAX_OCCLUSION_UNITS = 64  # occluded units per record: words, or windows of words in longer texts


def explain_texts(model, texts: list[str], top_k: int = 5) -> list[dict[str, Any]]:
    if model.kind == "entities":
        return [_entities(spans) | {"html": highlight_html(text, [dict(s, weight=1.0) for s in spans])}
                for text, spans in zip(texts, model.scores(texts), strict=True)]
    scores = np.asarray(model.scores(texts), dtype=float)
    outputs, about = _outputs(model, scores)
    if hasattr(model.learner, "contributions"):
        return _linear(model.learner, texts, outputs, about, top_k)
    return _occlusion(model, texts, scores, outputs, about, top_k)


def _entities(spans) -> dict[str, Any]:
    summary = "; ".join(f"{s['label']}: {s['text']}" for s in spans[:10]) or "no entities found"
    return {"summary": summary, "explains": "entity spans found by the model",
            "highlights": [{"start": s["start"], "end": s["end"], "label": s["label"], "weight": 1.0} for s in spans]}


def _outputs(model, scores) -> tuple[list[int], list[str]]:
    target = model.target
    if target.kind == "binary":
        return [target.positive_index] * len(scores), [f"probability of {target.positive_label!r}"] * len(scores)
    k = scores.argmax(axis=1)
    noun = "label" if target.kind == "multilabel" else "class"
    return [int(i) for i in k], [f"score of {noun} {target.classes[i]!r}" for i in k]


def _linear(learner, texts, outputs, about, top_k) -> list[dict[str, Any]]:
    out = []
    for text, explains, items in zip(texts, about, learner.contributions(texts, outputs), strict=True):
        top = [t for t in items if t[2] > 0][:top_k]
        highlights = []
        for name, _, weight in top:
            kind, _, gram = name.partition(":")
            if kind == "word":
                for match in re.finditer(r"(?<!\w)" + r"\W+".join(map(re.escape, gram.split())) + r"(?!\w)", text,
                                         flags=re.IGNORECASE):
                    highlights.append({"start": match.start(), "end": match.end(), "weight": round(weight, 6),
                                       "feature": gram})
        contributions = [{"feature": name, "value": round(value, 6), "contribution": round(weight, 6)}
                         for name, value, weight in top]
        out.append({"contributions": contributions, "explains": explains, "highlights": _merge(highlights),
                    "summary": "; ".join(f"{c['feature']}={c['contribution']:+.3f}" for c in contributions),
                    "html": highlight_html(text, _merge(highlights))})
    return out


def word_units(text: str, limit: int = MAX_OCCLUSION_UNITS) -> list[tuple[int, int]]:
    """Character ranges of the units occlusion removes: words, merged into windows when there are many."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if len(words) <= limit:
        return words
    size = int(np.ceil(len(words) / limit))
    return [(words[i][0], words[min(i + size, len(words)) - 1][1]) for i in range(0, len(words), size)]


def _occlusion(model, texts, scores, outputs, about, top_k) -> list[dict[str, Any]]:
    out = []
    for text, base, k, explains in zip(texts, scores, outputs, about, strict=True):
        units = word_units(text)
        variants = [text[:a] + " " * (b - a) + text[b:] for a, b in units]
        occluded = np.asarray(model.scores(variants), dtype=float) if variants else np.zeros((0,))
        base_value = base[k] if np.ndim(base) else float(base)
        values = (occluded[:, k] if occluded.ndim == 2 else occluded) if len(variants) else np.zeros(0)
        drops = base_value - values
        order = np.argsort(-drops)[:top_k]
        highlights = [{"start": units[i][0], "end": units[i][1], "weight": round(float(drops[i]), 6),
                       "feature": text[units[i][0]:units[i][1]]} for i in order if drops[i] > 0]
        contributions = [{"feature": h["feature"], "value": None, "contribution": h["weight"]} for h in highlights]
        out.append({"contributions": contributions, "explains": f"{explains} (occlusion: drop when removed)",
                    "highlights": sorted(highlights, key=lambda h: h["start"]),
                    "summary": "; ".join(f"{c['feature']}={c['contribution']:+.3f}" for c in contributions),
                    "html": highlight_html(text, highlights)})
    return out


def _merge(highlights: list[dict]) -> list[dict]:
    """Overlapping highlights merged (the larger weight kept), sorted by position."""
    merged: list[dict] = []
    for h in sorted(highlights, key=lambda h: (h["start"], -h["end"])):
        if merged and h["start"] < merged[-1]["end"]:
            last = merged[-1]
            last["end"] = max(last["end"], h["end"])
            last["weight"] = max(last["weight"], h["weight"])
            continue
        merged.append(dict(h))
    return merged


def highlight_html(text: str, highlights: list[dict]) -> str:
    """The text as HTML with each highlight in a ``<mark>`` whose opacity follows its weight."""
    spans = _merge(highlights)
    top = max((abs(h["weight"]) for h in spans), default=1.0) or 1.0
    parts, position = [], 0
    for h in spans:
        parts.append(html.escape(text[position:h["start"]]))
        alpha = 0.25 + 0.75 * abs(h["weight"]) / top
        title = html.escape(str(h.get("label") or f"{h['weight']:+.3f}"))
        parts.append(f'<mark style="background: rgba(255, 170, 0, {alpha:.2f})" title="{title}">'
                     f"{html.escape(text[h['start']:h['end']])}</mark>")
        position = h["end"]
    parts.append(html.escape(text[position:]))
    return "<p>" + "".join(parts).replace("\n", "<br>") + "</p>"
