"""Survival learners on tables of patient records: scikit-survival's estimators behind one scikit-learn style
wrapper that imputes, scales and one-hot encodes inside ``fit`` (no leakage), and answers risk scores and
survival curves at any times.

``y`` is the road's ``(n, 2)`` array of (time, event). Learners:

- ``cox``: Cox proportional hazards (Efron ties, a tiny ridge penalty for stability); also fits lifelines'
  Cox model on the same features for hazard ratios with CIs and the Schoenfeld-residual test;
- ``cox-ridge``: Cox with a ridge penalty chosen from ``RIDGE_ALPHAS`` by inner 3-fold cross-validated C-index;
- ``coxnet``: elastic-net penalised Cox, its penalty chosen by inner 3-fold cross-validated C-index;
- ``cox-spline``: ``coxnet`` on the features plus cubic B-splines of the numeric ones (risks that bend);
- ``rsf``: random survival forest; ``gbs``: gradient-boosted Cox-loss trees;
- ``ensemble``: cox-ridge, cox-spline and rsf. Risk score: the mean of each member's own risk score read as a
  percentile of that member's scores on the training records (the members' scores live on different scales);
  survival curve: the members' average curve;
- ``select``: the simplest of ridge Cox, spline Cox, rsf and the ensemble (in that order) whose inner 5-fold
  cross-validated Harrell C-index is within one standard error of the best (``one_se_choice``);
- ``auto``: the ensemble. Chosen on training records only: inner 5-fold cross-validation on the training parts
  of WHAS500, GBSG2 and veterans (5 splits each) compared members (cox, ridge cox, spline cox, rsf, gbs; coxnet
  and two other rsf settings on GBSG2 and veterans only) and ways to combine them (average curve, percentiles,
  z-scores, stacking weights); this combination had the best mean C-index over the three (0.736 against 0.730
  for the previous cox+rsf+gbs average curve). Choosing per split by inner cross-validation did no better on
  held-out records than a fixed ensemble (with 100-400 training records the inner estimates differ by less
  than their noise). Nested cross-validation on the training parts (``benchmarks/survival_rule_cv.py``) found no
  selection rule better than the fixed ensemble: held-out C-index on veterans / GBSG2 / WHAS500 0.720 / 0.703 /
  0.772 for it, 0.716 / 0.692 / 0.765 for ridge Cox vs the ensemble by the one-standard-error rule, 0.714 /
  0.692 / 0.759 for ``select``'s ladder. Nor any weighting of the members (``benchmarks/survival_stack_cv.py``,
  nested CV on WHAS500, GBSG2, veterans and Haberman): weights from out-of-fold C-indices, stacking on the
  simplex, greedy selection, z-score averaging and regularised boosting members were all within about one
  standard error of these equal weights (mean held-out C-index 0.7256 for them; best +0.0011, SE 0.0010).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from medai.errors import MedAIError
from medai.evaluation.kinds.survival import harrell

SURVIVAL_LEARNERS = ("cox", "cox-ridge", "coxnet", "cox-spline", "rsf", "gbs", "ensemble", "select")
ENSEMBLE_MEMBERS = ("cox-ridge", "cox-spline", "rsf")
# ``select``: the candidates from the simplest to the most complex, judged by SELECT_FOLDS-fold inner
# cross-validated Harrell C-index with the one-standard-error rule (see ``one_se_choice``).
SELECT_CANDIDATES = ("cox-ridge", "cox-spline", "rsf", "ensemble")
SELECT_FOLDS = 5
# Ridge penalties tried for cox-ridge (scikit-survival's alpha: the log partial likelihood minus alpha/2 * ||beta||^2,
# features standardised), chosen by inner cross-validated C-index.
RIDGE_ALPHAS = (0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def structured(y: np.ndarray):
    """``(n, 2)`` time/event -> scikit-survival's structured array."""
    from sksurv.util import Surv

    y = np.asarray(y, dtype=float)
    return Surv.from_arrays(event=y[:, 1].astype(bool), time=y[:, 0])


def preprocessor() -> ColumnTransformer:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                        ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False, drop="if_binary"))])
    return ColumnTransformer([("num", numeric, make_column_selector(dtype_include=np.number)),
                              ("cat", categorical, make_column_selector(dtype_exclude=np.number))],
                             verbose_feature_names_out=False)


def _estimator(name: str, seed: int):
    if name in ("cox", "cox-ridge"):
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        return CoxPHSurvivalAnalysis(alpha=1e-4, ties="efron", n_iter=200)
    if name == "coxnet":
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        return CoxnetSurvivalAnalysis(l1_ratio=0.5, n_alphas=30, alpha_min_ratio=0.01, fit_baseline_model=True,
                                      max_iter=100000)
    if name == "rsf":
        from sksurv.ensemble import RandomSurvivalForest

        return RandomSurvivalForest(n_estimators=300, min_samples_split=10, min_samples_leaf=5, max_features="sqrt",
                                    n_jobs=1, random_state=seed)
    if name == "gbs":
        from sksurv.ensemble import GradientBoostingSurvivalAnalysis

        return GradientBoostingSurvivalAnalysis(n_estimators=200, learning_rate=0.05, max_depth=2, subsample=0.8,
                                                min_samples_leaf=5, random_state=seed)
    raise MedAIError(f"unknown survival learner {name!r}; choose one of {', '.join((*SURVIVAL_LEARNERS, 'auto'))}")


class SplineCox(BaseEstimator):
    """Penalised Cox on the features plus a cubic B-spline basis (4 knots at quantiles, linear beyond them) of
    each numeric feature with more than 5 distinct values, so that a risk can bend with a measurement; the
    elastic-net penalty is chosen by inner cross-validated C-index as for ``coxnet``."""

    def fit_with(self, learner: SurvivalLearner, Z: np.ndarray, y: np.ndarray) -> SplineCox:
        from sklearn.preprocessing import SplineTransformer

        self.columns_ = [j for j in range(Z.shape[1]) if len(np.unique(Z[:, j])) > 5]
        if self.columns_:
            self.spline_ = SplineTransformer(n_knots=4, degree=3, knots="quantile", extrapolation="linear").fit(
                Z[:, self.columns_])
            basis = self.spline_.transform(Z[:, self.columns_])
            self.mean_, self.scale_ = basis.mean(axis=0), basis.std(axis=0) + 1e-9
        W = self._expand(Z)
        self.model_ = learner._fit_coxnet(W, y)
        return self

    def _expand(self, Z: np.ndarray) -> np.ndarray:
        if not self.columns_:
            return Z
        return np.hstack([Z, (self.spline_.transform(Z[:, self.columns_]) - self.mean_) / self.scale_])

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.model_.predict(self._expand(Z))

    def predict_survival_function(self, Z: np.ndarray):
        return self.model_.predict_survival_function(self._expand(Z))


def _curves(model, Z: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``(n, len(times))`` survival probabilities; beyond a step function's domain the last value is carried."""
    functions = model.predict_survival_function(Z)
    out = np.empty((len(Z), len(times)))
    for i, fn in enumerate(functions):
        low, high = fn.domain
        out[i] = np.where(times < low, 1.0, fn(np.clip(times, low, high)))
    return out


def one_se_choice(fold_scores: dict[str, Sequence[float]], order: Sequence[str]) -> str:
    """The one-standard-error rule: the simplest candidate whose mean cross-validated score is within one standard
    error of the best mean.

    ``fold_scores`` holds each candidate's score per inner fold (higher is better; NaN folds are left out) and
    ``order`` the candidates from simplest to most complex. The standard error is the best candidate's: the
    standard deviation of its fold scores over the square root of their number. A more complex candidate is
    chosen only when it beats every simpler one by more than that."""
    if not order:
        raise MedAIError("one_se_choice needs at least one candidate")
    missing = [name for name in order if name not in fold_scores]
    if missing:
        raise MedAIError(f"no fold scores for candidate(s) {', '.join(missing)}")
    clean = {name: np.asarray(fold_scores[name], dtype=float) for name in order}
    clean = {name: values[np.isfinite(values)] for name, values in clean.items()}
    means = {name: float(values.mean()) if len(values) else -np.inf for name, values in clean.items()}
    best = max(order, key=lambda name: means[name])
    if not np.isfinite(means[best]):
        return order[0]
    values = clean[best]
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return next(name for name in order if means[name] >= means[best] - se)


def percentile(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-rank empirical CDF of ``values`` within the sorted ``reference`` scores, in [0, 1]."""
    low = np.searchsorted(reference, values, side="left")
    high = np.searchsorted(reference, values, side="right")
    return (low + high) / (2.0 * len(reference))


def member_references(models, Z: np.ndarray) -> list[np.ndarray]:
    """Each member's risk scores on the training records, sorted: the scale its new scores are read against."""
    return [np.sort(np.asarray(m.predict(Z), dtype=float)) for m in models]


def ensemble_risk(models, references, Z: np.ndarray) -> np.ndarray:
    """The mean over the members of each member's risk score as a percentile of its own training-record scores.

    The members' scores live on different scales (a Cox linear predictor, a forest's summed cumulative hazard, a
    boosted log hazard); percentiles put them on one scale before averaging (rank averaging), and each member
    keeps its own native risk score, which ranks better than a score read off its survival curve."""
    return np.mean([percentile(ref, np.asarray(m.predict(Z), dtype=float))
                    for m, ref in zip(models, references, strict=True)], axis=0)


class SurvivalLearner(BaseEstimator):
    """Risk scores (higher = earlier event) and survival curves from a DataFrame of records."""

    def __init__(self, learner: str = "auto", seed: int = 0, inner_folds: int = 3):
        self.learner = learner
        self.seed = seed
        self.inner_folds = inner_folds

    # -- fitting -------------------------------------------------------------------------------------------
    def _fit_one(self, name: str, Z: np.ndarray, y: np.ndarray):
        if name == "ensemble":
            return [self._fit_one(member, Z, y) for member in ENSEMBLE_MEMBERS]
        if name == "cox-spline":
            return SplineCox().fit_with(self, Z, y)
        if name == "coxnet":
            return self._fit_coxnet(Z, y)
        model = _estimator(name, self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name not in ("cox", "cox-ridge"):
                return model.fit(Z, structured(y))
            if name == "cox":
                alphas = (1e-4, 1e-2, 1.0)
            else:
                chosen = self._tune_ridge(Z, y)
                alphas = [a for a in RIDGE_ALPHAS if a >= chosen]
            for alpha in alphas:  # a rare binary feature can make Newton's steps diverge: more ridge
                try:
                    return model.set_params(alpha=alpha).fit(Z, structured(y))
                except (ValueError, np.linalg.LinAlgError):
                    continue
            raise MedAIError("the Cox model does not converge on these records even with a ridge penalty of 1; "
                             "try --learner rsf or coxnet")

    def _fit_coxnet(self, Z, y):
        """Elastic-net Cox at the penalty chosen by inner cross-validation. Coordinate descent started from zero
        at a small penalty can overflow ("weights are too large", seen on spline features of WHAS500): then the
        warm-started path from the largest penalty down to the chosen one is fitted instead (its last penalty,
        which ``predict`` uses, is the chosen one)."""
        model, path = self._tune_coxnet(_estimator("coxnet", self.seed), Z, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return model.fit(Z, structured(y))
            except ArithmeticError:
                pass
            try:
                return model.set_params(alphas=path).fit(Z, structured(y))
            except ArithmeticError as exc:
                raise MedAIError("the elastic-net Cox model overflows on these records even along its penalty path; "
                                 "try --learner cox-ridge or rsf") from exc

    def _tune_coxnet(self, model, Z, y):
        """The model set to the penalty with the best inner cross-validated C-index, and the path of penalties from
        the largest down to that one."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = clone(model).set_params(fit_baseline_model=False).fit(Z, structured(y))
            alphas = path.alphas_
            scores = np.zeros(len(alphas))
            for train, test in self._folds(y):
                fitted = clone(model).set_params(alphas=alphas, fit_baseline_model=False).fit(
                    Z[train], structured(y[train]))
                for k, alpha in enumerate(alphas):
                    scores[k] += np.nan_to_num(harrell(y[test], fitted.predict(Z[test], alpha=alpha)))
        best = int(np.argmax(scores))
        return model.set_params(alphas=[float(alphas[best])]), [float(a) for a in alphas[:best + 1]]

    def _tune_ridge(self, Z, y) -> float:
        """The ridge penalty of RIDGE_ALPHAS with the best inner cross-validated Harrell C-index (a penalty whose
        Newton steps diverge in a fold scores nothing there)."""
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        scores = np.zeros(len(RIDGE_ALPHAS))
        for train, test in self._folds(y):
            for k, alpha in enumerate(RIDGE_ALPHAS):
                try:
                    fitted = CoxPHSurvivalAnalysis(alpha=alpha, ties="efron", n_iter=200).fit(
                        Z[train], structured(y[train]))
                    scores[k] += np.nan_to_num(harrell(y[test], fitted.predict(Z[test])))
                except (ValueError, np.linalg.LinAlgError):
                    continue
        return float(RIDGE_ALPHAS[int(np.argmax(scores))])

    def _folds(self, y, n_splits: int | None = None):
        folds = StratifiedKFold(n_splits=n_splits or self.inner_folds, shuffle=True, random_state=self.seed)
        return list(folds.split(np.zeros(len(y)), y[:, 1].astype(int)))

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> SurvivalLearner:
        if not isinstance(X, pd.DataFrame):
            raise MedAIError(f"{type(self).__name__}.fit expects a pandas DataFrame of features")
        y = np.asarray(y, dtype=float)
        self.prep_ = preprocessor().fit(X)
        Z = self._transform(X)
        self.feature_names_ = [str(n) for n in self.prep_.get_feature_names_out()]
        self.times_ = np.unique(y[y[:, 1] == 1, 0])
        self.selection_scores_, self.selection_se_ = {}, {}
        chosen = "ensemble" if self.learner == "auto" else self.learner
        if chosen == "select":
            fold_scores = self._fold_scores(Z, y, SELECT_CANDIDATES, SELECT_FOLDS)
            for name, values in fold_scores.items():
                values = np.asarray(values, dtype=float)
                values = values[np.isfinite(values)]
                self.selection_scores_[name] = round(float(values.mean()), 6) if len(values) else None
                self.selection_se_[name] = (round(float(values.std(ddof=1) / np.sqrt(len(values))), 6)
                                            if len(values) > 1 else None)
            chosen = one_se_choice(fold_scores, SELECT_CANDIDATES)
        elif chosen not in SURVIVAL_LEARNERS:
            _estimator(chosen, self.seed)  # raises with the choices
        self.chosen_learner_ = chosen
        self.model_ = self._fit_one(chosen, Z, y)
        self.references_ = member_references(self.model_, Z) if isinstance(self.model_, list) else None
        self.background_ = Z.mean(axis=0)
        self.cox_summary_ = cox_summary(Z, y, self.feature_names_) if chosen == "cox" else {}
        return self

    def _fold_scores(self, Z, y, candidates, n_folds: int) -> dict[str, list[float]]:
        """Harrell C-index of each candidate on each of ``n_folds`` stratified inner folds of the training records
        (the ensemble averages the members fitted in the same fold; each member is fitted once per fold)."""
        needed = list(dict.fromkeys(m for name in candidates
                                    for m in (ENSEMBLE_MEMBERS if name == "ensemble" else (name,))))
        fold_scores: dict[str, list[float]] = {name: [] for name in candidates}
        for train, test in self._folds(y, n_folds):
            fitted = {name: self._fit_one(name, Z[train], y[train]) for name in needed}
            for name in candidates:
                if name == "ensemble":
                    members = [fitted[m] for m in ENSEMBLE_MEMBERS]
                    risk = ensemble_risk(members, member_references(members, Z[train]), Z[test])
                else:
                    risk = np.asarray(fitted[name].predict(Z[test]), dtype=float)
                fold_scores[name].append(harrell(y[test], risk))
        return fold_scores

    # -- predicting ----------------------------------------------------------------------------------------
    def _transform(self, X) -> np.ndarray:
        return np.asarray(self.prep_.transform(X), dtype=float)

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self._transform(X)

    def _risk(self, Z) -> np.ndarray:
        if isinstance(self.model_, list):
            return ensemble_risk(self.model_, self.references_, Z)
        return np.asarray(self.model_.predict(Z), dtype=float)

    def predict(self, X) -> np.ndarray:
        """Risk score per record (higher = the event sooner)."""
        return self._risk(self.transform(X))

    def predict_curves(self, X, times) -> np.ndarray:
        """Survival probability per record at each of ``times``: ``(n, len(times))``."""
        Z = self.transform(X)
        times = np.asarray(times, dtype=float)
        if isinstance(self.model_, list):
            return np.mean([_curves(m, Z, times) for m in self.model_], axis=0)
        return _curves(self.model_, Z, times)

    # -- explaining ----------------------------------------------------------------------------------------
    def contributions(self, X) -> np.ndarray:
        """Per original feature, its additive share of the risk score: exact for Cox (coef * (z - mean)),
        SHAP (permutation, against the training mean) for the forests and the ensemble."""
        Z = self.transform(X)
        model = self.model_
        if not isinstance(model, list) and hasattr(model, "coef_"):
            coef = np.asarray(model.coef_, dtype=float).reshape(len(self.feature_names_), -1)[:, 0]
            values = coef * (Z - self.background_)
        else:
            import shap

            explainer = shap.explainers.Permutation(self._risk, self.background_[None, :], seed=self.seed)
            values = np.asarray(explainer(Z, max_evals=2 * Z.shape[1] + 1, silent=True).values)
        return self._by_source(values)

    def _by_source(self, values: np.ndarray) -> np.ndarray:
        names = list(map(str, self.prep_.feature_names_in_))
        out = np.zeros((values.shape[0], len(names)))
        for j, column in enumerate(self.feature_names_):
            source = column.removeprefix("missingindicator_")
            owner = source if source in names else next(
                (n for n in sorted(names, key=len, reverse=True) if source.startswith(n + "_")), None)
            if owner is not None:
                out[:, names.index(owner)] += values[:, j]
        return out


def cox_summary(Z: np.ndarray, y: np.ndarray, names: list[str]) -> dict:
    """Hazard ratios (per standard deviation of numeric features, per category vs the rest) with 95% CIs and
    the Schoenfeld-residual proportional-hazards test per covariate, from lifelines on the training records."""
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    frame = pd.DataFrame(Z, columns=names)
    keep = [c for c in names if frame[c].std() > 0]
    frame = frame[keep].assign(_time=y[:, 0], _event=y[:, 1])
    for penalizer in (0.0, 0.01, 0.1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitter = CoxPHFitter(penalizer=penalizer).fit(frame, "_time", "_event")
                test = proportional_hazard_test(fitter, frame, time_transform="rank")
            break
        except Exception:  # noqa: BLE001 - lifelines' convergence errors take several types
            continue
    else:
        return {}
    summary = fitter.summary
    rows = [{"feature": name, "hazard_ratio": float(summary.loc[name, "exp(coef)"]),
             "ci_low": float(summary.loc[name, "exp(coef) lower 95%"]),
             "ci_high": float(summary.loc[name, "exp(coef) upper 95%"]), "p": float(summary.loc[name, "p"])}
            for name in keep]
    ph = test.summary
    ph_rows = [{"feature": str(name if not isinstance(name, tuple) else name[0]),
                "statistic": float(ph.loc[name, "test_statistic"]), "p": float(ph.loc[name, "p"])}
               for name in ph.index]
    return {"hazard_ratios": rows, "schoenfeld": ph_rows, "penalizer": penalizer,
            "global_violation": bool(min((r["p"] for r in ph_rows), default=1.0) < 0.05 / max(len(ph_rows), 1))}
