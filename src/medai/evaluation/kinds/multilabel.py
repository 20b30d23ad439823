"""Multilabel targets: one probability per label, a threshold per label chosen on validation data.

``y`` is ``(n, L)`` with 0/1 and NaN where a record's label is unknown; every metric skips the unknown
entries of each label. Macro = mean over labels; micro = one curve over all known (record, label) pairs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.errors import MedAIError
from medai.evaluation import plots
from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.kinds.base import KindEvaluator
from medai.evaluation.metrics import auprc, auroc, finite_mean
from medai.evaluation.threshold import ThresholdRule, choose_threshold


def _known(y: np.ndarray, s: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
    mask = ~np.isnan(y[:, j])
    return y[mask, j].astype(int), s[mask, j]


def multilabel_metrics(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray, labels: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    per_auroc, per_auprc, tp, fp, fn = [], [], 0, 0, 0
    f1s = []
    for j, name in enumerate(labels):
        yj, sj = _known(y, s, j)
        a, p = auroc(yj, sj), auprc(yj, sj)
        per_auroc.append(a)
        per_auprc.append(p)
        pred = sj >= thresholds[j]
        tpj, fpj, fnj = int(np.sum(pred & (yj == 1))), int(np.sum(pred & (yj == 0))), int(np.sum(~pred & (yj == 1)))
        tp, fp, fn = tp + tpj, fp + fpj, fn + fnj
        f1s.append(2 * tpj / (2 * tpj + fpj + fnj) if 2 * tpj + fpj + fnj else np.nan)
        out[f"auroc[{name}]"], out[f"auprc[{name}]"] = a, p
    known = ~np.isnan(y)
    with np.errstate(invalid="ignore"):
        out = {
            "auroc_macro": finite_mean(per_auroc),
            "auroc_micro": auroc(y[known].astype(int), s[known]),
            "auprc_macro": finite_mean(per_auprc),
            "auprc_micro": auprc(y[known].astype(int), s[known]),
            "f1_macro": finite_mean(f1s),
            "f1_micro": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else np.nan,
            **out,
        }
    return out


class MultilabelEvaluator(KindEvaluator):
    kind = "multilabel"
    headline = "auroc_macro"
    stratify = False
    cv_metric_names = ("auroc_macro", "auroc_micro", "auprc_macro", "auprc_micro")
    subgroup_header = (("auroc_macro", "macro AUROC (95% CI)"), ("auprc_macro", "macro AUPRC"))

    def outcome(self, y, target):
        return np.asarray(y, dtype=float)

    def decide(self, y_val, s_val, target, rule, task_options) -> dict[str, Any]:
        parsed = ThresholdRule.parse(rule)
        thresholds = {}
        for j, name in enumerate(target.classes):
            yj, sj = _known(y_val, s_val, j)
            if parsed.method == "fixed" or len(np.unique(yj)) < 2:
                thresholds[name] = parsed.target if parsed.method == "fixed" else 0.5
            else:
                thresholds[name] = choose_threshold(yj, sj, parsed)
        return {"rule": parsed.method, "target": parsed.target, "threshold": None, "thresholds": thresholds,
                "description": f"per label: {parsed.describe()} (0.5 for a label without both values there)"}

    def _thresholds(self, decision, labels) -> np.ndarray:
        return np.array([decision["thresholds"][name] for name in labels], dtype=float)

    def point_metrics(self, y, s, decision) -> dict[str, float]:
        labels = list(decision["thresholds"])
        return multilabel_metrics(y, s, self._thresholds(decision, labels), labels)

    def cv_fold_metrics(self, y, s) -> dict[str, float]:
        labels = [str(j) for j in range(y.shape[1])]
        metrics = multilabel_metrics(y, s, np.full(len(labels), 0.5), labels)
        return {name: metrics[name] for name in self.cv_metric_names}

    def subgroup_stats(self, y, s, decision, *, seed) -> tuple[dict[str, Any], str]:
        from medai.evaluation.subgroups import MIN_GROUP_SIZE

        if len(y) < MIN_GROUP_SIZE:
            return {"auroc_macro": None, "auroc_macro_ci_low": None, "auroc_macro_ci_high": None,
                    "auprc_macro": None}, "too few records"
        m = bootstrap_metrics(lambda i: {k: v for k, v in self.point_metrics(y[i], s[i], decision).items()
                                         if k in ("auroc_macro", "auprc_macro")}, np.zeros(len(y)),
                              n_boot=200, seed=seed)
        return {"auroc_macro": m["auroc_macro"]["value"], "auroc_macro_ci_low": m["auroc_macro"]["ci_low"],
                "auroc_macro_ci_high": m["auroc_macro"]["ci_high"], "auprc_macro": m["auprc_macro"]["value"]}, ""

    def plots(self, y, s, decision, target, test) -> dict[str, bytes]:
        values = [test.get(f"auroc[{name}]", {}).get("value") for name in target.classes]
        prevalence = [float(np.nanmean(y[:, j])) if np.any(~np.isnan(y[:, j])) else np.nan
                      for j in range(len(target.classes))]
        return {"auroc_per_label": plots.label_bars_png(target.classes, values, prevalence)}

    def balance(self, y, parts, target) -> dict[str, Any]:
        if np.all(np.isnan(y)):
            raise MedAIError("the multilabel target has no known labels")
        return {"prevalence": {name: {c: round(float(np.nanmean(y[idx, j])), 6) if np.any(~np.isnan(y[idx, j]))
                                      else None for j, c in enumerate(target.classes)}
                               for name, idx in parts.items() if len(idx)}}

    def describe_balance(self, balance) -> str:
        return "label rates: " + "; ".join(
            f"{name} " + ", ".join(f"{c} {v:.2f}" if v is not None else f"{c} n/a" for c, v in rates.items())
            for name, rates in balance["prevalence"].items())

    def items(self, s, decision, target) -> list[dict[str, Any]]:
        thresholds = self._thresholds(decision, target.classes)
        return [{"labels": [c for c, p, t in zip(target.classes, row, thresholds, strict=True) if p >= t],
                 "probabilities": {c: float(p) for c, p in zip(target.classes, row, strict=True)}}
                for row in np.asarray(s, dtype=float)]

    def columns(self, s, decision, target) -> dict[str, Any]:
        s = np.asarray(s, dtype=float)
        out: dict[str, Any] = {"labels": [";".join(item["labels"]) for item in self.items(s, decision, target)]}
        out.update({f"p_{c}": s[:, j] for j, c in enumerate(target.classes)})
        return out
