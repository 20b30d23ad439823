"""Explanations of a visit-history prediction by occlusion: how the score changes when one code of the index
visit, or one earlier visit, is left out (any visit learner; the score is the positive-class probability, the
predicted class's probability, or the mean label probability for multilabel)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.modalities.longitudinal.histories import VisitHistories
from medai.modalities.longitudinal.visits import DOMAINS

MAX_CODES = 60  # codes of the index visit occluded one by one (the rest are left in)


def _score(model, X: VisitHistories, column: int | None) -> np.ndarray:
    s = np.asarray(model.scores(X), dtype=float)
    if s.ndim == 1:
        return s
    return s.mean(axis=1) if column is None else s[:, column]


def explain_visits(model, X: VisitHistories, top_k: int = 5) -> list[dict[str, Any]]:
    out = []
    base_all = np.asarray(model.scores(X), dtype=float)
    for i in range(len(X)):
        history = X.visits[i]
        column = None
        if base_all.ndim == 2 and model.kind == "multiclass":
            column = int(np.argmax(base_all[i]))
        base = _score(model, X.take([i]), column)[0]
        names, variants = [], []
        index_visit = history[-1]
        for domain in DOMAINS:
            for code in index_visit.get(domain, [])[:MAX_CODES]:
                reduced = {d: [c for c in index_visit.get(d, []) if not (d == domain and c == code)] for d in DOMAINS}
                names.append(f"{domain}:{code}")
                variants.append([*history[:-1], reduced])
        for j in range(len(history) - 1):
            names.append(f"earlier visit {j + 1} of {len(history) - 1}")
            variants.append([v for k, v in enumerate(history) if k != j])
        if not variants:
            out.append({"summary": "", "explains": "no codes to leave out", "contributions": []})
            continue
        reduced = VisitHistories(np.array([X.ids[i]] * len(variants), dtype=object),
                                 np.array([X.subjects[i]] * len(variants), dtype=object), variants)
        effect = base - _score(model, reduced, column)
        order = np.argsort(-np.abs(effect))[:top_k]
        items = [{"feature": names[j], "value": 1.0, "contribution": float(effect[j])} for j in order]
        out.append({"summary": ", ".join(f"{c['feature']} {c['contribution']:+.3f}" for c in items),
                    "explains": "change in the score when the code or visit is left out (occlusion)",
                    "contributions": items})
    return out
