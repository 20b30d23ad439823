"""Treatment-effect targets: the outcome each arm would bring each patient, judged as trialists do.

``y`` is ``(n, 3)``: arm index (0 = the reference arm, ``target.classes`` names them), observed outcome, true
effect of the last arm against the reference (NaN unless the data are semi-synthetic). A treatment-effect
learner answers ``predict_effects(X)`` -> *scores* ``(n, arms, 6)``: per arm the expected outcome, the effect
against the reference, its 95% interval (low, high), the propensity of that arm, and 1 for the arm the learner's
policy gives the patient (0 for the others; scores of 5 channels, from learners without a policy, mean the arm
with the best expected outcome).

Metrics (95% bootstrap CIs over patients, arms kept in proportion): the average treatment effect of each arm
against the reference, doubly robust (AIPW, ``ate``) and by inverse-propensity weighting (``ate_ipw``), the
model's own average (``ate_model``); with true effects, out-of-sample sqrt(PEHE) and the ATE error. Policy
evaluation: the value of the learned policy (each patient gets the arm the learner's policy gives) and of
treating everyone with each single arm, by IPW and doubly robust estimators; whether the learned policy beats
the best single arm significantly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medai.errors import MedAIError
from medai.evaluation import plots
from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.kinds.base import KindEvaluator
from medai.tasks.kinds import TargetSpec

OVERLAP_BOUND = 0.01  # a patient whose propensity for some arm is below this lies outside the overlap
CLIP = 0.01  # propensities are clipped here in the weighted estimators
MAX_BOOT = 1000


def _arms(y) -> np.ndarray:
    return np.asarray(y, dtype=float)[:, 0].astype(int)


def dr_scores(y, s) -> np.ndarray:
    """``(n, arms)`` doubly robust (AIPW) scores: the outcome model's prediction for each arm, corrected by the
    weighted residual where the patient received that arm. Their mean over patients is the arm's value."""
    y, s = np.asarray(y, float), np.asarray(s, float)
    arms, outcome = _arms(y), y[:, 1]
    mu, e = s[:, :, 0], np.clip(s[:, :, 4], CLIP, 1.0)
    received = arms[:, None] == np.arange(s.shape[1])[None, :]
    return mu + received * (outcome[:, None] - mu) / e


def ipw_values(y, s, policy: np.ndarray) -> float:
    """Normalised (Hajek) inverse-propensity-weighted mean outcome of patients whose arm matches ``policy``."""
    y, s = np.asarray(y, float), np.asarray(s, float)
    arms, outcome = _arms(y), y[:, 1]
    e = np.clip(s[np.arange(len(y)), arms, 4], CLIP, 1.0)
    match = (arms == policy).astype(float) / e
    return float(np.sum(match * outcome) / np.sum(match)) if match.sum() else float("nan")


def best_arm(s, higher_is_better: bool) -> np.ndarray:
    """The arm the learned policy gives each patient: the learner's policy channel when the scores carry one,
    else the arm with the best expected outcome."""
    s = np.asarray(s, float)
    if s.shape[2] > 5:
        return s[:, :, 5].argmax(axis=1)
    expected = s[:, :, 0]
    return expected.argmax(axis=1) if higher_is_better else expected.argmin(axis=1)


class TreatmentEffectEvaluator(KindEvaluator):
    kind = "treatment-effect"
    headline = "ate"
    stratify = True  # by arm
    supports_conformal = False
    cv_metric_names = ("ate",)
    subgroup_header = (("ate", "ATE, doubly robust (95% CI)"),)

    def outcome(self, y, target: TargetSpec) -> np.ndarray:
        return np.asarray(y, dtype=float)

    def strata(self, y) -> np.ndarray:
        return _arms(y)

    def scores(self, learner, X, target: TargetSpec) -> np.ndarray:
        return np.asarray(learner.predict_effects(X), dtype=float)

    def decide(self, y_val, s_val, target, rule, task_options) -> dict[str, Any]:
        if rule not in (None, ""):
            raise MedAIError(f"--threshold {rule!r} does not apply to a treatment-effect model")
        better = target.fields.get("higher_is_better", True)
        return {"rule": "best-arm", "target": None, "threshold": None, "arms": list(target.classes),
                "reference": target.classes[0], "higher_is_better": better, "overlap_bound": OVERLAP_BOUND,
                "description": "recommend the arm with the best average outcome (chosen on the validation records), "
                               f"or another arm with a {'higher' if better else 'lower'} expected outcome where its "
                               "benefit over that arm is confident; the recommendation is confident when the benefit "
                               "over the reference is (95% interval excludes no benefit) and the patient lies inside "
                               "the overlap"}

    # -- measuring -----------------------------------------------------------------------------------------
    def point_metrics(self, y, s, decision) -> dict[str, float]:
        y, s = np.asarray(y, float), np.asarray(s, float)
        arms_present = set(_arms(y).tolist())
        gamma = dr_scores(y, s)
        out: dict[str, float] = {}
        names = decision["arms"]
        for a in range(1, s.shape[1]):
            if {0, a} <= arms_present:
                ate = float(np.mean(gamma[:, a] - gamma[:, 0]))
                ipw = ipw_values(y, s, np.full(len(y), a)) - ipw_values(y, s, np.zeros(len(y), dtype=int))
            else:
                ate = ipw = float("nan")
            suffix = "" if s.shape[1] == 2 else f"_{names[a]}"
            out[f"ate{suffix}"] = ate
            out[f"ate_ipw{suffix}"] = ipw
            out[f"ate_model{suffix}"] = float(np.mean(s[:, a, 1]))
        truth = y[:, 2]
        if s.shape[1] == 2 and np.isfinite(truth).all():
            predicted = s[:, 1, 1]
            out["pehe"] = float(np.sqrt(np.mean((predicted - truth) ** 2)))
            out["ate_error"] = float(abs(predicted.mean() - truth.mean()))
        return out

    def evaluate(self, y, s, decision, *, n_boot=1000, seed=0) -> dict[str, dict]:
        y, s = np.asarray(y, float), np.asarray(s, float)
        result = bootstrap_metrics(lambda i: self.point_metrics(y[i], s[i], decision), self.strata(y),
                                   n_boot=min(n_boot, MAX_BOOT), seed=seed)
        if s.shape[1] > 2:  # the contract's ``ate``: the first arm against the reference
            result = {"ate": result[f"ate_{decision['arms'][1]}"], **result}
        return result

    def cv_fold_metrics(self, y, s) -> dict[str, float]:
        gamma = dr_scores(y, s)
        return {"ate": float(np.mean(gamma[:, -1] - gamma[:, 0]))}

    def extra_results(self, y, s, decision, y_val, s_val, target, rule, *, n_boot, seed) -> dict[str, Any]:
        policy = policy_values(y, s, decision, n_boot=min(n_boot, MAX_BOOT), seed=seed)
        rows = [["learned policy", *_ci_cells(policy["learned"]), *_ci_cells(policy["learned_ipw"])]]
        rows += [[f"everyone: {arm}", *_ci_cells(policy["arms"][arm]), *_ci_cells(policy["arms_ipw"][arm])]
                 for arm in decision["arms"]]
        diff = policy["learned_minus_best_arm"]
        table = {"title": "Policy evaluation on the test patients: value of the learned policy and of each single arm",
                 "note": (f"Doubly robust and IPW estimators with 95% bootstrap CIs. Learned minus the best single arm "
                          f"({policy['best_arm']}): {diff['value']:.3f} ({diff['ci_low']:.3f} to {diff['ci_high']:.3f})"
                          f"; {'significant' if policy['significant'] else 'not significant'} at 5%."),
                 "header": ["policy", "DR value", "CI low", "CI high", "IPW value", "CI low", "CI high"],
                 "rows": rows}
        return {"metrics": {"policy": policy}, "tables": [table]}

    def subgroup_stats(self, y, s, decision, *, seed) -> tuple[dict[str, Any], str]:
        from medai.evaluation.subgroups import MIN_GROUP_SIZE

        y, s = np.asarray(y, float), np.asarray(s, float)
        row = {"ate": None, "ate_ci_low": None, "ate_ci_high": None}
        if len(y) < MIN_GROUP_SIZE or len(set(_arms(y).tolist())) < 2:
            return row, "too few records or a single arm"
        ci = bootstrap_metrics(lambda i: {"ate": self.cv_fold_metrics(y[i], s[i])["ate"]}, self.strata(y),
                               n_boot=200, seed=seed)["ate"]
        row.update(ate=ci["value"], ate_ci_low=ci["ci_low"], ate_ci_high=ci["ci_high"])
        return row, "" if s.shape[1] == 2 else f"last arm ({decision['arms'][-1]}) against the reference"

    def plots(self, y, s, decision, target, test) -> dict[str, bytes]:
        policy = policy_values(y, s, decision, n_boot=200, seed=0)
        names = ["learned", *decision["arms"]]
        entries = [policy["learned"], *[policy["arms"][a] for a in decision["arms"]]]
        fig, ax = plots._figure(5.0, 3.6)
        values = [e["value"] for e in entries]
        errors = [[e["value"] - e["ci_low"] for e in entries], [e["ci_high"] - e["value"] for e in entries]]
        ax.bar(range(len(names)), values, yerr=errors, capsize=4, color=["tab:green"] + ["tab:grey"] * len(names[1:]))
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        ax.set_ylabel("policy value (doubly robust)")
        ax.set_title("Learned policy vs treating everyone with one arm")
        uplift = np.asarray(s, float)[:, -1, 1]
        fig2, ax2 = plots._figure()
        ax2.hist(uplift, bins=30)
        ax2.set_xlabel(f"predicted effect of {decision['arms'][-1]} vs {decision['reference']}")
        ax2.set_ylabel("patients (test)")
        return {"policy_value": plots.png_bytes(fig), "effect_distribution": plots.png_bytes(fig2)}

    def balance(self, y, parts, target) -> dict[str, Any]:
        arms = _arms(y)
        return {"prevalence": {name: round(float(np.mean(arms[idx] != 0)), 6) for name, idx in parts.items()
                               if len(idx)}}

    def describe_balance(self, balance) -> str:
        return "share outside the reference arm: " + super().describe_balance(balance)

    # -- one prediction ------------------------------------------------------------------------------------
    def recommendations(self, s, decision) -> list[dict[str, Any]]:
        s = np.asarray(s, dtype=float)
        arms, better = decision["arms"], decision["higher_is_better"]
        sign = 1.0 if better else -1.0
        best = best_arm(s, better)
        out = []
        for i, k in enumerate(best):
            outside = bool((s[i, :, 4] < decision.get("overlap_bound", OVERLAP_BOUND)).any())
            if k == 0:  # the reference is best: confident when every other arm is confidently worse
                benefit, low, high = 0.0, 0.0, 0.0
                confident = all((sign * s[i, a, 3] < 0) if better else (sign * s[i, a, 2] < 0)
                                for a in range(1, s.shape[1]))
            else:
                benefit, low, high = sign * s[i, k, 1], sign * s[i, k, 2], sign * s[i, k, 3]
                low, high = min(low, high), max(low, high)
                confident = low > 0
            reason = ("outside the overlap of the training data" if outside else
                      "" if confident else "the interval of the benefit includes no benefit")
            out.append({"recommended_arm": arms[k], "expected_benefit": float(benefit), "benefit_low": float(low),
                        "benefit_high": float(high), "confident": bool(confident and not outside),
                        "reason": reason})
        return out

    def items(self, s, decision, target) -> list[dict[str, Any]]:
        s = np.asarray(s, dtype=float)
        arms = decision["arms"]
        out = []
        for i, rec in enumerate(self.recommendations(s, decision)):
            text = (f"{rec['recommended_arm']}: benefit {rec['expected_benefit']:+.3g} "
                    f"({rec['benefit_low']:+.3g} to {rec['benefit_high']:+.3g}) over {decision['reference']}"
                    if rec["confident"] else f"no confident recommendation ({rec['reason']})")
            out.append({**rec, "prediction_text": text,
                        "expected_outcomes": {a: round(float(s[i, k, 0]), 6) for k, a in enumerate(arms)},
                        "effects": {a: {"effect": round(float(s[i, k, 1]), 6), "low": round(float(s[i, k, 2]), 6),
                                        "high": round(float(s[i, k, 3]), 6)} for k, a in enumerate(arms) if k},
                        "propensities": {a: round(float(s[i, k, 4]), 6) for k, a in enumerate(arms)}})
        return out

    def columns(self, s, decision, target) -> dict[str, Any]:
        s = np.asarray(s, dtype=float)
        recs = self.recommendations(s, decision)
        out: dict[str, Any] = {key: [r[key] for r in recs] for key in
                               ("recommended_arm", "expected_benefit", "benefit_low", "benefit_high", "confident",
                                "reason")}
        for k, arm in enumerate(decision["arms"]):
            out[f"expected_{arm}"] = np.round(s[:, k, 0], 6)
            if k:
                out[f"effect_{arm}"] = np.round(s[:, k, 1], 6)
        return out


def _ci_cells(entry: dict) -> list:
    return [entry["value"], entry["ci_low"], entry["ci_high"]]


def policy_values(y, s, decision, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Values (mean outcome) of the learned policy and of each single arm on ``y``, doubly robust and IPW, with
    percentile-bootstrap CIs; the learned policy minus the best single arm and whether that is significant."""
    y, s = np.asarray(y, float), np.asarray(s, float)
    arms, better = decision["arms"], decision["higher_is_better"]
    learned = best_arm(s, better)
    n = len(y)

    def compute(i):
        gamma = dr_scores(y[i], s[i])
        values = {"learned": float(np.mean(gamma[np.arange(len(i)), learned[i]])),
                  "learned_ipw": ipw_values(y[i], s[i], learned[i])}
        for k, arm in enumerate(arms):
            values[f"arm:{arm}"] = float(np.mean(gamma[:, k]))
            values[f"ipw:{arm}"] = ipw_values(y[i], s[i], np.full(len(i), k))
        single = [values[f"arm:{a}"] for a in arms]
        values["best_single"] = max(single) if better else min(single)
        return values

    point = compute(np.arange(n))
    best_name = max(arms, key=lambda a: point[f"arm:{a}"] * (1 if better else -1))
    best_index = arms.index(best_name)

    def with_difference(i):
        values = compute(i)
        gamma = dr_scores(y[i], s[i])
        values["difference"] = float(np.mean(gamma[np.arange(len(i)), learned[i]] - gamma[:, best_index]))
        return values

    result = bootstrap_metrics(with_difference, _arms(y), n_boot=n_boot, seed=seed)
    diff = result["difference"]
    sign = 1 if better else -1
    significant = diff["ci_low"] is not None and (sign * diff["ci_low"] > 0 if better else sign * diff["ci_high"] > 0)
    return {"learned": result["learned"], "learned_ipw": result["learned_ipw"],
            "arms": {a: result[f"arm:{a}"] for a in arms}, "arms_ipw": {a: result[f"ipw:{a}"] for a in arms},
            "best_arm": best_name, "learned_minus_best_arm": diff, "significant": bool(significant),
            "share_recommended": {a: round(float(np.mean(learned == k)), 6) for k, a in enumerate(arms)},
            "estimator": "doubly robust (AIPW) with the model's outcome and propensity predictions; IPW normalised"}
