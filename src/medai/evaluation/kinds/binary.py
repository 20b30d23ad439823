"""Binary targets: a positive-class probability, a threshold chosen on validation data, the clinical metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.evaluation import plots
from medai.evaluation.evaluate import confusion_matrix, evaluate_binary
from medai.evaluation.kinds.base import KindEvaluator, prevalence_by_split
from medai.evaluation.metrics import auprc, auroc, binary_metrics, confusion, expected_calibration_error
from medai.evaluation.threshold import ThresholdRule, choose_threshold
from medai.tasks.kinds import TargetSpec

ARGMAX_DESCRIPTION = "argmax of the model output (MedMNIST protocol; threshold 0.5)"


class BinaryEvaluator(KindEvaluator):
    kind = "binary"
    headline = "auroc"
    cv_metric_names = ("auroc", "auprc", "brier", "ece")
    subgroup_header = (("positives", "positives"), ("auroc", "AUROC (95% CI)"), ("sensitivity", "sensitivity"),
                       ("specificity", "specificity"), ("ppv", "PPV"))

    def outcome(self, y, target: TargetSpec) -> np.ndarray:
        """Class indices -> 1 for the positive class, 0 for the other."""
        return (np.asarray(y) == target.positive_index).astype(int)

    def scores(self, learner, X, target: TargetSpec) -> np.ndarray:
        return np.asarray(learner.predict_proba(X), dtype=float)[:, target.positive_index]

    def decide(self, y_val, s_val, target, rule, task_options) -> dict[str, Any]:
        parsed = ThresholdRule.parse(rule)
        if task_options.get("decision") == "argmax":
            return {"rule": "argmax", "target": parsed.target, "threshold": 0.5, "description": ARGMAX_DESCRIPTION}
        return {"rule": parsed.method, "target": parsed.target, "threshold": choose_threshold(y_val, s_val, parsed),
                "description": parsed.describe()}

    def point_metrics(self, y, s, decision) -> dict[str, float]:
        return binary_metrics(y, s, decision["threshold"])

    def evaluate(self, y, s, decision, *, n_boot=1000, seed=0) -> dict[str, dict]:
        return evaluate_binary(y, s, decision["threshold"], n_boot=n_boot, seed=seed)

    def cv_fold_metrics(self, y, s) -> dict[str, float]:
        return {"auroc": auroc(y, s), "auprc": auprc(y, s), "brier": float(np.mean((s - y) ** 2)),
                "ece": expected_calibration_error(y, s)}

    def extra_results(self, y, s, decision, y_val, s_val, target, rule, *, n_boot, seed) -> dict[str, Any]:
        """With the argmax protocol, the metrics at the validation-chosen threshold too (a clinician's view)."""
        if decision["rule"] != "argmax":
            return {"metrics": {}, "tables": []}
        parsed = ThresholdRule.parse(rule)
        clinical = choose_threshold(y_val, s_val, parsed)
        test = evaluate_binary(y, s, decision["threshold"], n_boot=n_boot, seed=seed)
        at_clinical = evaluate_binary(y, s, clinical, n_boot=n_boot, seed=seed)
        table = {
            "title": "Decision rule on the test set: protocol (argmax) vs threshold chosen on validation",
            "note": (f"Positive rate: validation {float(np.mean(y_val)):.3f}, test {float(np.mean(y)):.3f}. "
                     "A threshold tuned on validation data carries its prevalence over to the test set."),
            "header": ["rule", "threshold", "accuracy", "sensitivity", "specificity", "F1"],
            "rows": [[name, float(t), m["accuracy"]["value"], m["sensitivity"]["value"],
                      m["specificity"]["value"], m["f1"]["value"]]
                     for name, t, m in (("protocol", decision["threshold"], test),
                                        (f"validation {parsed.method}", clinical, at_clinical))],
        }
        extra = {"threshold": round(float(clinical), 6), "rule": parsed.describe(), "metrics": at_clinical}
        return {"metrics": {"test_at_validation_threshold": extra}, "tables": [table]}

    def confusion(self, y, s, decision, target) -> dict:
        return {"labels": [target.negative_label, target.positive_label],
                "matrix": confusion_matrix(y, s, decision["threshold"])}

    def subgroup_stats(self, y, s, decision, *, seed) -> tuple[dict[str, Any], str]:
        from medai.evaluation.bootstrap import bootstrap_metrics
        from medai.evaluation.subgroups import MIN_GROUP_SIZE

        tn, fp, fn, tp = confusion(y, s, decision["threshold"])
        row = {"positives": int(y.sum()), "auroc": None, "auroc_ci_low": None, "auroc_ci_high": None,
               "sensitivity": tp / (tp + fn) if tp + fn else None,
               "specificity": tn / (tn + fp) if tn + fp else None, "ppv": tp / (tp + fp) if tp + fp else None}
        if len(y) < MIN_GROUP_SIZE or len(np.unique(y)) < 2:
            return row, "too few records or a single class: no AUROC"
        ci = bootstrap_metrics(lambda i: {"auroc": auroc(y[i], s[i])}, y, n_boot=200, seed=seed)["auroc"]
        row.update(auroc=ci["value"], auroc_ci_low=ci["ci_low"], auroc_ci_high=ci["ci_high"])
        return row, ""

    def plots(self, y, s, decision, target, test) -> dict[str, bytes]:
        matrix = self.confusion(y, s, decision, target)
        return {
            "roc": plots.roc_png(y, s, test["auroc"]["value"], decision["threshold"]),
            "precision_recall": plots.pr_png(y, s, test["auprc"]["value"]),
            "calibration": plots.calibration_png(y, s),
            "confusion": plots.confusion_png(matrix["matrix"], matrix["labels"]),
        }

    def balance(self, y, parts, target) -> dict[str, Any]:
        return {"prevalence": prevalence_by_split(y, parts)}

    def describe_balance(self, balance) -> str:
        return "positive rate: " + super().describe_balance(balance)

    def items(self, s, decision, target) -> list[dict[str, Any]]:
        threshold, negative, positive = decision["threshold"], target.negative_label, target.positive_label
        return [{"label": positive if p >= threshold else negative, "probability": float(p),
                 "probabilities": {negative: 1.0 - float(p), positive: float(p)}} for p in np.asarray(s, float)]

    def columns(self, s, decision, target) -> dict[str, Any]:
        s = np.asarray(s, dtype=float)
        return {"probability": s,
                "label": np.where(s >= decision["threshold"], target.positive_label, target.negative_label)}
