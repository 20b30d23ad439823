"""Multiclass targets: class probabilities, the most probable class as the decision, one-vs-rest AUROC."""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.errors import MedAIError
from medai.evaluation import plots
from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.kinds.base import KindEvaluator
from medai.evaluation.metrics import multiclass_metrics

ARGMAX = {"rule": "argmax", "target": None, "threshold": None, "description": "most probable class"}


class MulticlassEvaluator(KindEvaluator):
    kind = "multiclass"
    headline = "auroc_macro"
    cv_metric_names = ("auroc_macro", "auroc_micro", "accuracy", "f1_macro")
    subgroup_header = (("auroc_macro", "macro AUROC (95% CI)"), ("accuracy", "accuracy"), ("f1_macro", "macro F1"))

    def outcome(self, y, target):
        return np.asarray(y).astype(int)

    def decide(self, y_val, s_val, target, rule, task_options) -> dict[str, Any]:
        if rule not in (None, "", "argmax"):
            raise MedAIError(f"--threshold {rule!r} applies to binary and multilabel targets; a multiclass model "
                             "predicts the most probable class")
        return dict(ARGMAX)

    def point_metrics(self, y, s, decision) -> dict[str, float]:
        return multiclass_metrics(y, s)

    def evaluate(self, y, s, decision, *, n_boot=1000, seed=0) -> dict[str, dict]:
        return super().evaluate(y, s, decision, n_boot=min(n_boot, 500), seed=seed)

    def cv_fold_metrics(self, y, s) -> dict[str, float]:
        metrics = multiclass_metrics(y, s)
        return {name: metrics[name] for name in self.cv_metric_names}

    def confusion(self, y, s, decision, target) -> dict:
        pred = np.asarray(s).argmax(axis=1)
        k = len(target.classes)
        matrix = [[int(np.sum((y == a) & (pred == b))) for b in range(k)] for a in range(k)]
        return {"labels": list(target.classes), "matrix": matrix}

    def subgroup_stats(self, y, s, decision, *, seed) -> tuple[dict[str, Any], str]:
        from medai.evaluation.subgroups import MIN_GROUP_SIZE

        pred = s.argmax(axis=1)
        row = {"auroc_macro": None, "auroc_macro_ci_low": None, "auroc_macro_ci_high": None,
               "accuracy": float(np.mean(pred == y)), "f1_macro": multiclass_metrics(y, s)["f1_macro"]}
        if len(y) < MIN_GROUP_SIZE or len(np.unique(y)) < 2:
            return row, "too few records or a single class: no AUROC"
        ci = bootstrap_metrics(lambda i: {"m": multiclass_metrics(y[i], s[i])["auroc_macro"]}, y,
                               n_boot=200, seed=seed)["m"]
        row.update(auroc_macro=ci["value"], auroc_macro_ci_low=ci["ci_low"], auroc_macro_ci_high=ci["ci_high"])
        return row, "macro AUROC over the classes present in the group"

    def plots(self, y, s, decision, target, test) -> dict[str, bytes]:
        matrix = self.confusion(y, s, decision, target)
        return {"roc_per_class": plots.roc_per_class_png(y, s, target.classes),
                "confusion": plots.confusion_png(matrix["matrix"], matrix["labels"])}

    def balance(self, y, parts, target) -> dict[str, Any]:
        return {"prevalence": {name: {c: round(float(np.mean(y[idx] == k)), 6) for k, c in enumerate(target.classes)}
                               for name, idx in parts.items() if len(idx)}}

    def describe_balance(self, balance) -> str:
        return "class shares: " + "; ".join(
            f"{name} " + ", ".join(f"{c} {v:.2f}" for c, v in shares.items())
            for name, shares in balance["prevalence"].items())

    def items(self, s, decision, target) -> list[dict[str, Any]]:
        s = np.asarray(s, dtype=float)
        return [{"label": target.classes[int(row.argmax())],
                 "probabilities": {c: float(p) for c, p in zip(target.classes, row, strict=True)}} for row in s]

    def columns(self, s, decision, target) -> dict[str, Any]:
        s = np.asarray(s, dtype=float)
        out: dict[str, Any] = {"label": np.asarray(target.classes, dtype=object)[s.argmax(axis=1)]}
        out.update({f"p_{c}": s[:, k] for k, c in enumerate(target.classes)})
        return out
