"""Learners for tabular patient records, one per kind of target, all scikit-learn estimators.

Imputation, scaling and one-hot encoding are steps of each learner's pipeline, so they are fitted on training
folds only and never see validation or test records (no leakage). ``learner="auto"`` chooses among the
candidates by cross-validated score *inside* ``fit``, so cross-validating an auto learner is properly nested.

- :class:`TabularClassifier`: binary (``y`` 0/1, 1 = positive) and multiclass (``y`` = class index).
- :class:`TabularRegressor`: a numeric target.
- :class:`TabularMultilabel`: one binary classifier per label, each fitted on the records whose label is known.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from medai.errors import MedAIError
from medai.evaluation.metrics import auroc, multiclass_metrics

CLASSIFIERS = ("logistic", "random-forest", "lightgbm")
REGRESSORS = ("ridge", "random-forest", "lightgbm")
CALIBRATIONS = (None, "isotonic", "sigmoid")


def _search_spaces() -> dict[str, dict]:
    """What ``medai tune`` may change in each estimator (the names of its scikit-learn parameters)."""
    from medai.tuning import Choice, Float, Int

    forest = {"n_estimators": Int(100, 600, log=True), "min_samples_leaf": Int(1, 20, log=True),
              "max_features": Choice(("sqrt", 0.3, 0.6))}
    return {
        "logistic": {"C": Float(1e-3, 1e2, log=True)},
        "ridge": {"alpha": Float(1e-3, 1e3, log=True)},
        "random-forest": forest,
        "lightgbm": {"n_estimators": Int(50, 800, log=True), "learning_rate": Float(0.005, 0.2, log=True),
                     "num_leaves": Int(4, 63, log=True), "min_child_samples": Int(5, 60, log=True),
                     "colsample_bytree": Float(0.4, 1.0), "reg_lambda": Float(1e-3, 10.0, log=True)},
    }


def _classifier(name: str, seed: int):
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=5000)
    if name == "random-forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=300, min_samples_leaf=3, max_features="sqrt",
                                      random_state=seed, n_jobs=1)
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**_lightgbm_params(seed))
    raise MedAIError(f"unknown learner {name!r} for a classification target; choose one of "
                     f"{', '.join((*CLASSIFIERS, 'auto'))}")


def _regressor(name: str, seed: int):
    if name == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0)
    if name == "random-forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=300, min_samples_leaf=3, max_features=0.5, random_state=seed,
                                     n_jobs=1)
    if name == "lightgbm":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(**_lightgbm_params(seed))
    raise MedAIError(f"unknown learner {name!r} for a regression target; choose one of "
                     f"{', '.join((*REGRESSORS, 'auto'))}")


def _lightgbm_params(seed: int) -> dict:
    return dict(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=10, subsample=0.8,
                subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, random_state=seed, n_jobs=1,
                deterministic=True, force_row_wise=True, verbose=-1)


def _preprocessor() -> ColumnTransformer:
    numeric = Pipeline([
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
        ("scale", StandardScaler()),
    ])
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ])
    return ColumnTransformer(
        [
            ("num", numeric, make_column_selector(dtype_include=np.number)),
            ("cat", categorical, make_column_selector(dtype_exclude=np.number)),
        ],
        verbose_feature_names_out=True,
    )


class _TabularPipeline(BaseEstimator):
    """What every tabular learner shares: the preprocessing pipeline, auto selection, SHAP values."""

    candidates: tuple[str, ...] = ()

    def _estimator(self, name: str):
        raise NotImplementedError

    def _pipeline(self, name: str) -> Pipeline:
        estimator = self._estimator(name)
        if getattr(self, "params", None):
            estimator.set_params(**self.params)
        return Pipeline([("prep", _preprocessor()), ("model", estimator)])

    def search_space(self) -> dict:
        """The tunable hyper-parameters of the chosen estimator (``medai tune``); ``auto`` has none of its own."""
        if self.learner == "auto":
            raise MedAIError("tuning searches one learner's space: give --learner (not auto), e.g. "
                             f"{', '.join(self.candidates)}")
        return _search_spaces().get(self.learner, {})

    def with_hyperparameters(self, config: dict):
        """An unfitted copy whose estimator takes ``config`` (on top of its defaults)."""
        return clone(self).set_params(params={**(getattr(self, "params", None) or {}), **config})

    def current_hyperparameters(self) -> dict:
        return {**self._estimator(self.learner).get_params(), **(getattr(self, "params", None) or {})}

    def _check(self, X) -> None:
        if not isinstance(X, pd.DataFrame):
            raise MedAIError(f"{type(self).__name__}.fit expects a pandas DataFrame of features")

    def _select(self, X: pd.DataFrame, y: np.ndarray, folds, score) -> tuple[str, dict[str, float]]:
        scores = {}
        for name in self.candidates:
            fold_scores = []
            for train, test in folds.split(X, y):
                model = self._pipeline(name).fit(X.iloc[train], y[train])
                fold_scores.append(score(y[test], self._output(model, X.iloc[test])))
            scores[name] = float(np.mean(fold_scores))
        return max(scores, key=scores.get), scores

    def _output(self, model, X):
        raise NotImplementedError

    def _finish(self, X: pd.DataFrame) -> None:
        transformed = self.pipeline_.named_steps["prep"].transform(X)
        self.background_mean_ = np.asarray(transformed, dtype=float).mean(axis=0)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The preprocessed numeric matrix (imputed, indicator columns, scaled, one-hot)."""
        check_is_fitted(self, "pipeline_")
        return np.asarray(self.pipeline_.named_steps["prep"].transform(X), dtype=float)

    def transformed_feature_sources(self) -> list[str]:
        """For each column after preprocessing, the original column it came from."""
        prep = self.pipeline_.named_steps["prep"]
        originals = sorted(map(str, self.feature_names_in_), key=len, reverse=True)
        sources = []
        for name in prep.get_feature_names_out():
            block, _, rest = name.partition("__")
            if block == "num":
                sources.append(rest.removeprefix("missingindicator_"))
            else:
                sources.append(next(o for o in originals if rest == o or rest.startswith(o + "_")))
        return sources

    def shap_values(self, X: pd.DataFrame, output: int | None = None) -> np.ndarray:
        """SHAP values in the model's raw score (log-odds for classifiers), one column per original feature
        (one-hot and indicator columns summed); ``output`` picks the class of a multiclass model.

        Linear models: exact SHAP under feature independence, coef * (x - mean of training data).
        Tree models: TreeExplainer (path-dependent). With calibration, the uncalibrated model is explained
        (calibration is a monotone map of its score).
        """
        transformed = self.transform(X)
        estimator = self.pipeline_.named_steps["model"]
        if hasattr(estimator, "coef_"):
            coef = np.atleast_2d(estimator.coef_)
            values = coef[0 if output is None or coef.shape[0] == 1 else output] * (transformed - self.background_mean_)
        else:
            import shap

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                raw = shap.TreeExplainer(estimator).shap_values(transformed)
            if isinstance(raw, list):
                raw = raw[1 if output is None else output] if len(raw) > 1 else raw[0]
            values = raw[:, :, 1 if output is None else output] if np.ndim(raw) == 3 else raw
        sources = self.transformed_feature_sources()
        names = list(map(str, self.feature_names_in_))
        out = np.zeros((len(X), len(names)))
        for j, source in enumerate(sources):
            out[:, names.index(source)] += values[:, j]
        return out


class TabularClassifier(ClassifierMixin, _TabularPipeline):
    """Binary or multiclass classifier on a DataFrame of numeric (float) and categorical (object) columns.

    Parameters
    ----------
    learner : "logistic", "random-forest", "lightgbm" or "auto" (best cross-validated AUROC, macro for
        multiclass).
    calibration : None, "isotonic" or "sigmoid" (CalibratedClassifierCV, 5-fold, on training data).
    seed : random state for every random step.
    auto_folds : folds of the internal CV used by ``learner="auto"``.
    n_classes : number of classes (``y`` holds 0..n_classes-1); ``None``: from ``y``. Classes absent from
        the training records get probability 0.
    params : hyper-parameters of the chosen estimator over its defaults (what ``medai tune`` found), e.g.
        ``{"C": 0.1}`` for logistic regression.
    """

    candidates = CLASSIFIERS

    def __init__(self, learner: str = "auto", calibration: str | None = None, seed: int = 0, auto_folds: int = 3,
                 n_classes: int | None = None, params: dict | None = None):
        self.learner = learner
        self.calibration = calibration
        self.seed = seed
        self.auto_folds = auto_folds
        self.n_classes = n_classes
        self.params = params

    def _estimator(self, name: str):
        return _classifier(name, self.seed)

    def _output(self, model, X):
        return model.predict_proba(X)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> TabularClassifier:
        if self.calibration not in CALIBRATIONS:
            raise MedAIError(f"calibration must be one of isotonic, sigmoid or none, got {self.calibration!r}")
        self._check(X)
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise MedAIError("TabularClassifier needs at least two classes among the training records")
        n_classes = int(self.n_classes or y.max() + 1)
        self.classes_ = np.arange(n_classes)
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        if self.learner == "auto":
            folds = StratifiedKFold(n_splits=self.auto_folds, shuffle=True, random_state=self.seed)
            self.chosen_learner_, self.selection_scores_ = self._select(X, y, folds, self._auto_score)
        else:
            _classifier(self.learner, self.seed)  # validates the name
            self.chosen_learner_, self.selection_scores_ = self.learner, {}
        pipeline = self._pipeline(self.chosen_learner_)
        if self.calibration:
            from sklearn.calibration import CalibratedClassifierCV

            folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=self.seed)
            self.model_ = CalibratedClassifierCV(pipeline, method=self.calibration, cv=folds, ensemble=False)
            self.model_.fit(X, y)
            self.pipeline_ = self.model_.calibrated_classifiers_[0].estimator
        else:
            self.model_ = pipeline.fit(X, y)
            self.pipeline_ = self.model_
        self._finish(X)
        return self

    @staticmethod
    def _auto_score(y, proba) -> float:
        if proba.shape[1] == 2:
            return auroc(y, proba[:, 1])
        return multiclass_metrics(y, proba)["auroc_macro"]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        proba = self.model_.predict_proba(X)
        present = np.asarray(self.model_.classes_, dtype=int)
        if len(present) == len(self.classes_):
            return proba
        full = np.zeros((len(proba), len(self.classes_)))
        full[:, present] = proba
        return full

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


class TabularRegressor(RegressorMixin, _TabularPipeline):
    """Regressor on a DataFrame of records: ``ridge``, ``random-forest``, ``lightgbm`` or ``auto`` (best
    cross-validated RMSE)."""

    candidates = REGRESSORS

    def __init__(self, learner: str = "auto", seed: int = 0, auto_folds: int = 3, params: dict | None = None):
        self.learner = learner
        self.seed = seed
        self.auto_folds = auto_folds
        self.params = params

    def _estimator(self, name: str):
        return _regressor(name, self.seed)

    def _output(self, model, X):
        return model.predict(X)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> TabularRegressor:
        self._check(X)
        y = np.asarray(y, dtype=float)
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        if self.learner == "auto":
            folds = KFold(n_splits=self.auto_folds, shuffle=True, random_state=self.seed)
            self.chosen_learner_, self.selection_scores_ = self._select(
                X, y, folds, lambda t, p: -float(np.sqrt(np.mean((t - p) ** 2))))
        else:
            _regressor(self.learner, self.seed)
            self.chosen_learner_, self.selection_scores_ = self.learner, {}
        self.model_ = self.pipeline_ = self._pipeline(self.chosen_learner_).fit(X, y)
        self._finish(X)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict(X), dtype=float)


class TabularMultilabel(ClassifierMixin, BaseEstimator):
    """One :class:`TabularClassifier` per label; ``y`` is ``(n, L)`` with 0/1 and NaN for unknown labels, and
    each label's classifier is fitted on the records where that label is known."""

    def __init__(self, learner: str = "auto", calibration: str | None = None, seed: int = 0, auto_folds: int = 3):
        self.learner = learner
        self.calibration = calibration
        self.seed = seed
        self.auto_folds = auto_folds

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> TabularMultilabel:
        y = np.asarray(y, dtype=float)
        self.estimators_ = []
        for j in range(y.shape[1]):
            known = ~np.isnan(y[:, j])
            yj = y[known, j].astype(int)
            if len(np.unique(yj)) < 2:
                raise MedAIError(f"label {j + 1} has a single value among the training records with it known; "
                                 "every label needs positive and negative records")
            base = TabularClassifier(self.learner, self.calibration, self.seed, self.auto_folds, n_classes=2)
            self.estimators_.append(clone(base).fit(X.loc[known] if isinstance(X, pd.DataFrame) else X[known], yj))
        self.feature_names_in_ = self.estimators_[0].feature_names_in_
        self.chosen_learner_ = ", ".join(sorted({e.chosen_learner_ for e in self.estimators_}))
        self.selection_scores_ = {}
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        return np.column_stack([e.predict_proba(X)[:, 1] for e in self.estimators_])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X) >= 0.5).astype(int)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.estimators_[0].transform(X)

    def shap_values(self, X: pd.DataFrame, output: int | None = None) -> np.ndarray:
        return self.estimators_[0 if output is None else output].shap_values(X)
