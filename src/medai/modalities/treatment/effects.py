"""Treatment-effect learners on tables of patient records: EconML's meta-learners and causal forest behind one
scikit-learn style wrapper, plus the nuisance models every evaluation needs (propensity per arm, outcome per
arm).

``y`` is the road's ``(n, 3)`` array: arm index (0 = reference), outcome, true effect (ignored: it is only for
evaluation). Learners (``learner``):

- ``t``: one outcome model per arm (the T-learner; EconML ``TLearner``);
- ``s``: one outcome model with the arm as a feature (EconML ``SLearner``);
- ``x``: EconML ``XLearner`` (imputed effects, weighted by the propensity);
- ``dr``: EconML ``DRLearner`` (doubly robust pseudo-outcomes, cross-fitted);
- ``causal-forest``: EconML ``CausalForestDML`` (honest forest with its own confidence intervals);
- ``auto``: ``t`` with each arm's outcome model chosen by 5-fold cross-validated error.

Outcome models (``base``): ``ridge``, ``poly`` (ridge on degree-2 features), ``kernel`` (RBF kernel ridge),
``gbm`` (LightGBM), ``glm-log`` (a Gaussian GLM with a log link, for positive right-skewed outcomes whose mean
grows multiplicatively; only a candidate when the arm's mean outcome is positive), or ``auto`` (the best of these
by 5-fold CV error, per arm). Per-patient intervals: the causal forest's own; for the others the 2.5-97.5%
percentiles over ``n_bootstrap`` refits on bootstrap resamples of the training records (arms kept in proportion).

Policy: every learner also answers which arm to give each patient. The *default arm* is the arm with the best
doubly robust value on the validation records (when the road hands them over; else the best mean predicted
outcome over the training records); a patient gets another arm only when its benefit over the default arm is
confident (its interval excludes no benefit; 95% with Bonferroni's correction over the other arms, so a
patient's chance of leaving the default arm for no real benefit stays under 5%), the best such arm by expected
outcome. Without intervals (``n_bootstrap=0``) this is the arm with the best expected outcome.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, cross_val_score
from sklearn.utils.validation import check_is_fitted

from medai.errors import MedAIError
from medai.modalities.treatment.survival import preprocessor

EFFECT_LEARNERS = ("t", "s", "x", "dr", "causal-forest")
BASES = ("ridge", "poly", "kernel", "gbm", "glm-log")
MIN_OVERLAP = 0.05  # refuse when fewer records than this lie where every arm is possible
OVERLAP_BOUND = 0.01  # a propensity below this means "this arm was (almost) impossible for this patient"


def base_regressor(name: str, seed: int = 0):
    if name == "ridge":
        return RidgeCV(alphas=np.logspace(-3, 3, 13))
    if name == "poly":
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler

        return make_pipeline(PolynomialFeatures(2, include_bias=False), StandardScaler(),
                             RidgeCV(alphas=np.logspace(-2, 4, 13)))
    if name == "kernel":
        from sklearn.kernel_ridge import KernelRidge
        from sklearn.model_selection import GridSearchCV

        return GridSearchCV(KernelRidge(kernel="rbf"), {"alpha": [0.01, 0.1, 1.0], "gamma": [0.005, 0.02, 0.05]},
                            cv=3, scoring="neg_mean_squared_error")
    if name == "glm-log":
        from sklearn.linear_model import TweedieRegressor
        from sklearn.model_selection import GridSearchCV

        return GridSearchCV(TweedieRegressor(power=0.0, link="log", max_iter=3000),
                            {"alpha": [1e-4, 1e-2, 1.0]}, cv=3, scoring="neg_mean_squared_error", error_score=np.nan)
    if name == "gbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=10,
                             subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed, n_jobs=1,
                             verbose=-1)
    raise MedAIError(f"unknown outcome model {name!r}; choose one of {', '.join((*BASES, 'auto'))}")


def choose_base(Z: np.ndarray, y: np.ndarray, seed: int) -> tuple[str, dict[str, float]]:
    """The outcome model with the lowest 5-fold cross-validated mean squared error."""
    folds = KFold(n_splits=min(5, max(2, len(y) // 10)), shuffle=True, random_state=seed)
    scores = {}
    for name in BASES:
        if name == "glm-log" and not np.mean(y) > 0:
            scores[name] = float("inf")  # a log link cannot start from a mean outcome that is not positive
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            error = -cross_val_score(base_regressor(name, seed), Z, y, cv=folds, scoring="neg_mean_squared_error",
                                     error_score=np.nan).mean()
        scores[name] = round(float(error), 6) if np.isfinite(error) else float("inf")
    return min(scores, key=scores.get), scores


def _propensity_model():
    return LogisticRegression(C=1.0, max_iter=5000)


class EffectLearner(BaseEstimator):
    """Expected outcome under each arm and the effect of each arm against the reference, with intervals."""

    def __init__(self, learner: str = "auto", base: str = "auto", n_arms: int = 2, n_bootstrap: int = 50,
                 seed: int = 0, higher_is_better: bool = True):
        self.learner = learner
        self.base = base
        self.n_arms = n_arms
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.higher_is_better = higher_is_better

    # -- fitting -------------------------------------------------------------------------------------------
    def _tuned(self, arm: int):
        """An unfitted copy of the arm's outcome model with its tuned settings (bootstrap refits reuse them)."""
        fitted = getattr(self, "outcome_models_", None)
        if fitted is None:
            return base_regressor(self.bases_[arm], self.seed)
        return clone(getattr(fitted[arm], "best_estimator_", fitted[arm]))

    def _cate_estimator(self, name: str, bases: list[str]):
        arm_models = [self._tuned(a) for a in range(len(bases))]
        regression = self._tuned(0)
        if name == "t":
            from econml.metalearners import TLearner

            return TLearner(models=arm_models)
        if name == "s":
            from econml.metalearners import SLearner

            return SLearner(overall_model=regression)
        if name == "x":
            from econml.metalearners import XLearner

            return XLearner(models=arm_models, propensity_model=_propensity_model())
        if name == "dr":
            from econml.dr import DRLearner

            return DRLearner(model_propensity=_propensity_model(), model_regression=regression,
                             model_final=base_regressor("ridge"), cv=3, random_state=self.seed)
        if name == "causal-forest":
            from econml.dml import CausalForestDML

            return CausalForestDML(model_y=regression, model_t=_propensity_model(), discrete_treatment=True,
                                   n_estimators=400, min_samples_leaf=5, cv=3, random_state=self.seed, n_jobs=1)
        raise MedAIError(f"unknown treatment-effect learner {name!r}; choose one of "
                         f"{', '.join((*EFFECT_LEARNERS, 'auto'))}")

    def _fit_cate(self, Z, arms, outcome):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._cate_estimator(self.chosen_learner_, self.bases_).fit(outcome, arms, X=Z)

    def fit(self, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame | None = None,
            y_val: np.ndarray | None = None) -> EffectLearner:
        """Fit on the training records; validation records, when given, only choose the policy's default arm."""
        if not isinstance(X, pd.DataFrame):
            raise MedAIError(f"{type(self).__name__}.fit expects a pandas DataFrame of features")
        y = np.asarray(y, dtype=float)
        arms, outcome = y[:, 0].astype(int), y[:, 1]
        self.prep_ = preprocessor().fit(X)
        Z = self._transform(X)
        self.feature_names_ = [str(n) for n in self.prep_.get_feature_names_out()]
        self.propensity_ = _propensity_model().fit(Z, arms)
        propensity = self._propensity(Z)
        self.overlap_ = overlap_summary(propensity, arms)
        with warnings.catch_warnings():  # an almost unpenalised fit finds a perfect separation if there is one
            warnings.simplefilter("ignore")
            separable = LogisticRegression(C=1e4, max_iter=5000).fit(Z, arms).score(Z, arms) == 1.0
        if separable or self.overlap_["share_inside"] < MIN_OVERLAP:
            raise MedAIError("no overlap between the arms: the features "
                             f"{'separate the arms perfectly' if separable else 'predict the arm almost perfectly'} "
                             f"({self.overlap_['share_inside']:.1%} of the training records have a propensity of at "
                             f"least {OVERLAP_BOUND} for every arm), so the effect of the treatment cannot be "
                             "separated from the features")
        self.balance_ = standardized_differences(Z, arms, propensity, self.feature_names_)
        self.selection_scores_ = {}
        self.bases_ = []
        for a in range(self.n_arms):
            if self.base == "auto":
                chosen, scores = choose_base(Z[arms == a], outcome[arms == a], self.seed)
                self.selection_scores_[f"arm {a}"] = scores
            else:
                base_regressor(self.base)
                chosen = self.base
            self.bases_.append(chosen)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.outcome_models_ = [base_regressor(b, self.seed).fit(Z[arms == a], outcome[arms == a])
                                    for a, b in enumerate(self.bases_)]
        self.chosen_learner_ = "t" if self.learner == "auto" else self.learner
        self.cate_ = self._fit_cate(Z, arms, outcome)
        self.bootstrap_ = []
        if self.chosen_learner_ != "causal-forest":
            rng = np.random.default_rng(self.seed)
            for _ in range(self.n_bootstrap):
                draw = np.concatenate([rng.choice(np.flatnonzero(arms == a), size=int((arms == a).sum()))
                                       for a in range(self.n_arms)])
                self.bootstrap_.append(self._fit_cate(Z[draw], arms[draw], outcome[draw]))
        self.background_ = Z.mean(axis=0)
        self.default_arm_, self.arm_values_ = self._choose_default_arm(Z, X_val, y_val)
        return self

    def _choose_default_arm(self, Z, X_val, y_val) -> tuple[int, dict]:
        """The arm with the best doubly robust (AIPW) value on the validation records when they hold every arm,
        else the arm with the best mean predicted outcome over the training records."""
        sign = 1.0 if self.higher_is_better else -1.0
        y_val = None if y_val is None else np.asarray(y_val, dtype=float)
        if X_val is not None and y_val is not None and len(y_val) and \
                set(y_val[:, 0].astype(int).tolist()) >= set(range(self.n_arms)):
            arms, outcome = y_val[:, 0].astype(int), y_val[:, 1]
            V = self._transform(X_val)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = self.predict_outcomes_z(V)
            e = np.clip(self._propensity(V), 0.01, 1.0)
            received = arms[:, None] == np.arange(self.n_arms)[None, :]
            values = (expected + received * (outcome[:, None] - expected) / e).mean(axis=0)
            how = "doubly robust value on the validation records"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = self.predict_outcomes_z(Z).mean(axis=0)
            how = "mean predicted outcome over the training records"
        best = int(np.argmax(sign * values))
        return best, {"how": how, "values": [round(float(v), 6) for v in values]}

    # -- predicting ----------------------------------------------------------------------------------------
    def _transform(self, X) -> np.ndarray:
        return np.asarray(self.prep_.transform(X), dtype=float)

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "cate_")
        return self._transform(X)

    def _propensity(self, Z) -> np.ndarray:
        out = np.zeros((len(Z), self.n_arms))
        out[:, self.propensity_.classes_.astype(int)] = self.propensity_.predict_proba(Z)
        return out

    def _effects(self, estimator, Z) -> np.ndarray:
        """``(n, n_arms)`` effect of each arm against the reference (0 for the reference)."""
        out = np.zeros((len(Z), self.n_arms))
        for a in range(1, self.n_arms):
            out[:, a] = np.asarray(estimator.effect(Z, T0=0, T1=a), dtype=float).reshape(-1)
        return out

    def _intervals(self, Z, effects, against: int = 0, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """``1 - alpha`` intervals of each arm's effect against the arm ``against`` (``effects`` are against the
        reference, arm 0)."""
        point = effects - effects[:, [against]]
        low, high = point.copy(), point.copy()
        if self.chosen_learner_ == "causal-forest":
            for a in range(self.n_arms):
                if a != against:
                    lo, hi = self.cate_.effect_interval(Z, T0=against, T1=a, alpha=alpha)
                    low[:, a], high[:, a] = np.reshape(lo, -1), np.reshape(hi, -1)
        elif self.bootstrap_:
            draws = np.stack([self._effects(model, Z) for model in self.bootstrap_])
            draws = draws - draws[:, :, [against]]
            low, high = np.quantile(draws, alpha / 2, axis=0), np.quantile(draws, 1 - alpha / 2, axis=0)
        return np.minimum(low, point), np.maximum(high, point)

    def _policy(self, expected, low_default, high_default) -> np.ndarray:
        """``(n, n_arms)`` one-hot: the default arm, unless some arm is confidently better than it (then the
        best of those by expected outcome)."""
        sign = 1.0 if self.higher_is_better else -1.0
        confident = (low_default > 0) if self.higher_is_better else (high_default < 0)
        confident[:, self.default_arm_] = True
        choice = np.where(confident, sign * expected, -np.inf).argmax(axis=1)
        return (choice[:, None] == np.arange(self.n_arms)[None, :]).astype(float)

    def predict_effects(self, X) -> np.ndarray:
        """``(n, n_arms, 6)``: per arm, the expected outcome (the reference arm's outcome model plus the arm's
        effect), the effect against the reference, its 95% interval (low, high), the propensity, and 1 for the
        arm the policy gives the patient (0 for the others)."""
        Z = self.transform(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            effects = self._effects(self.cate_, Z)
            low, high = self._intervals(Z, effects)
            reference = np.asarray(self.outcome_models_[0].predict(Z), dtype=float)
            expected = reference[:, None] + effects
            default = getattr(self, "default_arm_", None)
            if default is None:  # fitted before the policy existed: the best expected outcome
                policy = (expected * (1 if self.higher_is_better else -1)).argmax(axis=1)
                policy = (policy[:, None] == np.arange(self.n_arms)[None, :]).astype(float)
            else:  # one interval per alternative arm: Bonferroni over the n_arms - 1 comparisons
                policy = self._policy(expected, *self._intervals(Z, effects, against=default,
                                                                 alpha=0.05 / max(1, self.n_arms - 1)))
        return np.stack([expected, effects, low, high, self._propensity(Z), policy], axis=-1)

    def predict_outcomes_z(self, Z) -> np.ndarray:
        """``(n, n_arms)`` expected outcome per arm of already transformed records (the reference arm's outcome
        model plus the arm's effect)."""
        effects = self._effects(self.cate_, Z)
        return np.asarray(self.outcome_models_[0].predict(Z), dtype=float)[:, None] + effects

    def predict_outcomes(self, X) -> np.ndarray:
        """``(n, n_arms)`` outcome-model predictions per arm (the nuisance of the doubly robust estimators)."""
        Z = self.transform(X)
        return np.column_stack([m.predict(Z) for m in self.outcome_models_])

    def predict(self, X) -> np.ndarray:
        """The effect of the last arm against the reference (two arms: the individual treatment effect)."""
        return self.predict_effects(X)[:, -1, 1]

    # -- explaining ----------------------------------------------------------------------------------------
    def effect_contributions(self, X) -> np.ndarray:
        """Per original feature, its SHAP share (permutation, against the training mean) of the last arm's
        effect against the reference."""
        import shap

        Z = self.transform(X)

        def effect(rows):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.asarray(self.cate_.effect(rows, T0=0, T1=self.n_arms - 1), dtype=float).reshape(-1)

        explainer = shap.explainers.Permutation(effect, self.background_[None, :], seed=self.seed)
        values = np.asarray(explainer(Z, max_evals=2 * Z.shape[1] + 1, silent=True).values)
        names = list(map(str, self.prep_.feature_names_in_))
        out = np.zeros((len(Z), len(names)))
        for j, column in enumerate(self.feature_names_):
            source = column.removeprefix("missingindicator_")
            owner = source if source in names else next(
                (n for n in sorted(names, key=len, reverse=True) if source.startswith(n + "_")), None)
            if owner is not None:
                out[:, names.index(owner)] += values[:, j]
        return out


def overlap_summary(propensity: np.ndarray, arms: np.ndarray) -> dict:
    inside = (propensity >= OVERLAP_BOUND).all(axis=1)
    return {"share_inside": round(float(inside.mean()), 6), "bound": OVERLAP_BOUND,
            "min_propensity_of_received_arm": round(float(propensity[np.arange(len(arms)), arms].min()), 6)}


def standardized_differences(Z, arms, propensity, names) -> list[dict]:
    """Per feature, the standardized mean difference of each arm against the reference, before and after
    inverse-propensity weighting (|SMD| < 0.1 is the usual sign of balance)."""
    rows = []
    for a in range(1, propensity.shape[1]):
        treated, control = arms == a, arms == 0
        w = 1.0 / np.clip(propensity[np.arange(len(arms)), arms], 1e-3, None)
        for j, name in enumerate(names):
            x = Z[:, j]
            pooled = np.sqrt((x[treated].var() + x[control].var()) / 2) or 1.0
            before = (x[treated].mean() - x[control].mean()) / pooled
            after = (np.average(x[treated], weights=w[treated]) - np.average(x[control], weights=w[control])) / pooled
            rows.append({"arm": a, "feature": name, "smd_before": round(float(before), 6),
                         "smd_after": round(float(after), 6)})
    return rows


def effect_extras(model, X_test, y_test) -> dict:
    from medai.evaluation import plots

    learner, target = model.learner, model.target
    arms = target.classes
    s = learner.predict_effects(X_test)
    y = np.asarray(y_test, dtype=float)
    tables = [{"title": "Covariate balance: standardized mean differences before and after inverse-propensity "
                        "weighting (training records, largest 15)",
               "note": "|SMD| < 0.1 is the usual sign of balance.",
               "header": ["arm vs reference", "feature", "SMD before", "SMD after"],
               "rows": [[arms[r["arm"]], r["feature"], r["smd_before"], r["smd_after"]]
                        for r in sorted(learner.balance_, key=lambda r: -abs(r["smd_before"]))[:15]]},
              {"title": "Overlap", "note": f"share of training records whose propensity for every arm is at least "
                                           f"{learner.overlap_['bound']}",
               "header": ["share inside overlap", "smallest propensity of the arm received"],
               "rows": [[learner.overlap_["share_inside"], learner.overlap_["min_propensity_of_received_arm"]]]}]
    if learner.selection_scores_:
        tables.append({"title": "Outcome model per arm: 5-fold cross-validated mean squared error (training)",
                       "note": f"chosen: {', '.join(f'{arms[a]}: {b}' for a, b in enumerate(learner.bases_))}",
                       "header": ["arm", *BASES],
                       "rows": [[arms[int(k.split()[1])], *[v[b] for b in BASES]]
                                for k, v in learner.selection_scores_.items()]})
    metrics = {"overlap": learner.overlap_, "outcome_models": dict(enumerate(learner.bases_))}
    if getattr(learner, "arm_values_", None):
        metrics["policy_default_arm"] = {"arm": arms[learner.default_arm_], **learner.arm_values_}
        tables.append({"title": "Policy: the default arm",
                       "note": f"Chosen by the {learner.arm_values_['how']}; a patient gets another arm only where its "
                               "benefit over the default arm is confident (the interval excludes no benefit; 95% with "
                               "Bonferroni's correction over the other arms).",
                       "header": ["arm", "value", "default"],
                       "rows": [[name, learner.arm_values_["values"][a], "yes" if a == learner.default_arm_ else ""]
                                for a, name in enumerate(arms)]})
    fig, ax = plots._figure()
    for a, name in enumerate(arms):
        ax.hist(s[y[:, 0] == a, a, 4], bins=20, range=(0, 1), alpha=0.5, label=f"received {name}")
    ax.set_xlabel("propensity of the arm received")
    ax.set_ylabel("patients (test)")
    ax.set_title("Overlap: propensity by arm")
    ax.legend(fontsize=8)
    return {"plots": {"propensity_by_arm": plots.png_bytes(fig)}, "tables": tables, "metrics": metrics}
