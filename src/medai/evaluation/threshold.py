"""Choosing the decision threshold on validation data (never on the test set)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medai.errors import MedAIError


@dataclass(frozen=True)
class ThresholdRule:
    """``youden`` (max sensitivity + specificity - 1), ``sensitivity`` (reach a target), ``se-ppv`` (max of
    min(sensitivity, positive predictive value): the PhysioNet 2012 challenge's Event 1 score), or ``fixed``."""

    method: str = "youden"
    target: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> ThresholdRule:
        """``'youden'``, ``'se-ppv'``, ``'sensitivity:0.9'``, ``'fixed:0.5'``."""
        if not text or text == "youden":
            return cls("youden")
        if text == "se-ppv":
            return cls("se-ppv")
        method, _, value = text.partition(":")
        if method not in {"sensitivity", "fixed"} or not value:
            raise MedAIError(f"threshold rule must be 'youden', 'se-ppv', 'sensitivity:0.9' or 'fixed:0.5', "
                             f"got {text!r}")
        try:
            target = float(value)
        except ValueError:
            raise MedAIError(f"threshold rule {text!r}: {value!r} is not a number") from None
        if not 0 < target < 1 and not (method == "fixed" and 0 <= target <= 1):
            raise MedAIError(f"threshold rule {text!r}: the value must lie between 0 and 1")
        return cls(method, target)

    def describe(self) -> str:
        if self.method == "youden":
            return "Youden's J (max sensitivity + specificity - 1) on the validation set"
        if self.method == "se-ppv":
            return "max of min(sensitivity, PPV) on the validation set (PhysioNet 2012 Event 1)"
        if self.method == "sensitivity":
            return f"highest threshold with validation sensitivity >= {self.target:g}"
        return f"fixed at {self.target:g}"


def choose_threshold(y_val: np.ndarray, p_val: np.ndarray, rule: ThresholdRule) -> float:
    y_val = np.asarray(y_val).astype(int)
    p_val = np.asarray(p_val, dtype=float)
    if rule.method == "fixed":
        return float(rule.target)
    candidates = np.unique(p_val)[::-1]  # descending: each is "p >= t"
    n_pos, n_neg = int(y_val.sum()), int(len(y_val) - y_val.sum())
    if n_pos == 0 or n_neg == 0:
        raise MedAIError("the validation set needs both classes to choose a threshold")
    pred = p_val[None, :] >= candidates[:, None]
    sens = (pred & (y_val == 1)).sum(axis=1) / n_pos
    spec = (~pred & (y_val == 0)).sum(axis=1) / n_neg
    if rule.method in ("youden", "se-ppv"):
        if rule.method == "youden":
            best = int(np.argmax(sens + spec - 1))
        else:
            ppv = (pred & (y_val == 1)).sum(axis=1) / np.maximum(pred.sum(axis=1), 1)
            best = int(np.argmax(np.minimum(sens, ppv)))
        # midway to the next lower score keeps the rule stable for unseen probabilities
        lower = candidates[best + 1] if best + 1 < len(candidates) else 0.0
        return float((candidates[best] + lower) / 2)
    reached = np.flatnonzero(sens >= rule.target)
    return float(candidates[reached[0]])
