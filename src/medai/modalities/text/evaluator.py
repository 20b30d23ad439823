"""The ``entities`` kind of target: strict span-level precision, recall and F1 (micro and per type), with
bootstrap CIs that resample documents.

Strict means a predicted span counts only when its start, end and type all equal a gold span's - the CoNLL /
seqeval ``strict`` definition (``tests/test_text_entities.py`` checks the figures against seqeval).
*Scores* of this kind are the predicted spans themselves: per document a list of ``{"start", "end", "label",
"text"}`` dicts.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from medai.errors import MedAIError
from medai.evaluation.kinds import register_evaluator
from medai.evaluation.kinds.base import KindEvaluator
from medai.tasks.kinds import TargetSpec

SPANS = {"rule": "spans", "target": None, "threshold": None, "description": "entity spans as the model decodes them"}
METRICS = ("precision", "recall", "f1")


def span_key(span) -> tuple[int, int, str]:
    if isinstance(span, dict):
        return int(span["start"]), int(span["end"]), str(span["label"])
    return int(span[0]), int(span[1]), str(span[2])


def span_counts(gold, predicted, types: list[str]) -> np.ndarray:
    """``(documents, types, 3)`` counts of true positives, false positives and false negatives (strict)."""
    index = {t: k for k, t in enumerate(types)}
    counts = np.zeros((len(gold), len(types), 3), dtype=np.int64)
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        gold_keys, pred_keys = {span_key(s) for s in g}, {span_key(s) for s in p}
        for key in gold_keys | pred_keys:
            k = index[key[2]]
            counts[i, k, 0 if key in gold_keys and key in pred_keys else (1 if key in pred_keys else 2)] += 1
    return counts


def prf(tp, fp, fn) -> tuple[float, float, float]:
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.where(fn > 0, 0.0, np.nan))
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall),
                      np.where(tp + fp + fn > 0, 0.0, np.nan))
    return precision, recall, f1


def _types(gold, predicted) -> list[str]:
    return sorted({span_key(s)[2] for docs in (gold, predicted) for doc in docs for s in doc})


def _entry(value, samples) -> dict[str, float | None]:
    finite = samples[np.isfinite(samples)]
    low, high = np.quantile(finite, [0.025, 0.975]) if len(finite) else (np.nan, np.nan)

    def clean(x):
        return round(float(x), 6) if np.isfinite(x) else None

    return {"value": clean(value), "ci_low": clean(low), "ci_high": clean(high)}


def span_scores(gold, predicted, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Micro and per-type strict P/R/F1 with percentile-bootstrap CIs over documents."""
    types = _types(gold, predicted)
    counts = span_counts(gold, predicted, types) if types else np.zeros((len(gold), 0, 3), dtype=np.int64)
    rng = np.random.default_rng(seed)
    n = len(gold)
    sums = np.zeros((n_boot, counts.shape[1], 3), dtype=np.int64)
    for start in range(0, n_boot, 100):  # in chunks: memory stays small for large corpora
        draw = rng.integers(0, n, size=(min(100, n_boot - start), n))
        sums[start:start + len(draw)] = counts[draw].sum(axis=1)
    total = counts.sum(axis=0)
    micro = prf(*total.sum(axis=0))
    micro_boot = prf(*np.moveaxis(sums.sum(axis=1), -1, 0))
    out = {"micro": {m: _entry(micro[j], micro_boot[j]) for j, m in enumerate(METRICS)}, "per_type": {}}
    per_type = prf(*np.moveaxis(total, -1, 0))
    per_type_boot = prf(*np.moveaxis(sums, -1, 0))
    for k, name in enumerate(types):
        out["per_type"][name] = {m: _entry(per_type[j][k], per_type_boot[j][:, k]) for j, m in enumerate(METRICS)}
        out["per_type"][name]["support"] = int(total[k, 0] + total[k, 2])
        out["per_type"][name]["predicted"] = int(total[k, 0] + total[k, 1])
    return out


class EntitiesEvaluator(KindEvaluator):
    kind = "entities"
    headline = "f1"
    stratify = False
    supports_conformal = False
    cv_metric_names = METRICS
    subgroup_header = (("f1", "micro F1"), ("precision", "precision"), ("recall", "recall"))

    def scores(self, learner, X, target: TargetSpec) -> np.ndarray:
        predicted = learner.predict(X)
        out = np.empty(len(predicted), dtype=object)
        for i, spans in enumerate(predicted):
            out[i] = list(spans)
        return out

    def outcome(self, y, target):
        return y

    def decide(self, y_val, s_val, target, rule, task_options) -> dict[str, Any]:
        if rule not in (None, ""):
            raise MedAIError(f"--threshold {rule!r} does not apply to entity models: they predict spans")
        return dict(SPANS)

    def point_metrics(self, y, s, decision) -> dict[str, float]:
        types = _types(y, s)
        p, r, f = prf(*span_counts(y, s, types).sum(axis=(0, 1))) if types else (np.nan,) * 3
        return {"precision": float(p), "recall": float(r), "f1": float(f)}

    def evaluate(self, y, s, decision, *, n_boot=1000, seed=0) -> dict[str, dict]:
        return span_scores(y, s, n_boot=n_boot, seed=seed)["micro"]

    def details(self, y, s, decision, target, *, n_boot=1000, seed=0) -> dict[str, Any]:
        scores = span_scores(y, s, n_boot=n_boot, seed=seed)
        unknown = sorted(set(scores["per_type"]) - set(target.classes))
        out: dict[str, Any] = {"per_type": scores["per_type"]}
        if unknown:
            out["types_not_in_training"] = unknown
        return out

    def cv_fold_metrics(self, y, s) -> dict[str, float]:
        return self.point_metrics(y, s, SPANS)

    def extra_results(self, y, s, decision, y_val, s_val, target, rule, *, n_boot, seed) -> dict[str, Any]:
        per_type = self.details(y, s, decision, target, n_boot=n_boot, seed=seed)["per_type"]
        table = {"title": "Per entity type (strict span and type match, test set)",
                 "note": "95% CIs from a bootstrap over documents.",
                 "header": ["type", "support", "predicted", "precision", "recall", "F1", "F1 95% CI"],
                 "rows": [[name, e["support"], e["predicted"], e["precision"]["value"], e["recall"]["value"],
                           e["f1"]["value"], _ci(e["f1"])] for name, e in per_type.items()]}
        return {"metrics": {"per_type": per_type}, "tables": [table]}

    def subgroup_stats(self, y, s, decision, *, seed) -> tuple[dict[str, Any], str]:
        point = self.point_metrics(y, s, decision)
        return point, "micro over the group's documents"

    def plots(self, y, s, decision, target, test) -> dict[str, bytes]:
        from medai.evaluation import plots

        per_type = span_scores(y, s, n_boot=1)["per_type"]
        names = [n for n in per_type if per_type[n]["f1"]["value"] is not None]
        if not names:
            return {}
        return {"f1_per_type": plots.importance_png(names, [per_type[n]["f1"]["value"] for n in names],
                                                    title="F1 per entity type (test)")}

    def balance(self, y, parts, target) -> dict[str, Any]:
        return {"prevalence": {name: round(float(np.mean([len(y[i]) for i in idx])), 3)
                               for name, idx in parts.items() if len(idx)}}

    def describe_balance(self, balance) -> str:
        return "entity spans per document: " + ", ".join(f"{k} {v:.1f}" for k, v in balance["prevalence"].items())

    def items(self, s, decision, target) -> list[dict[str, Any]]:
        return [{"entities": [dict(span) for span in spans], "n_entities": len(spans)} for spans in s]

    def columns(self, s, decision, target) -> dict[str, Any]:
        return {"entities": [json.dumps([dict(span) for span in spans], ensure_ascii=False) for spans in s],
                "n_entities": [len(spans) for spans in s]}


def _ci(entry) -> str:
    if entry["ci_low"] is None:
        return ""
    return f"{entry['ci_low']:.3f}-{entry['ci_high']:.3f}"


register_evaluator(EntitiesEvaluator())
