"""Disease-risk learners for tabular patient records.

:class:`TabularClassifier` is one scikit-learn estimator holding the whole model: imputation, scaling and
one-hot encoding are steps of its pipeline, so they are fitted on training folds only and never see the
validation or test records (no leakage). ``learner='auto'`` chooses among the candidates by
cross-validated AUROC *inside* ``fit``, so cross-validating an auto learner is properly nested.

Weights are stored with skops, which refuses to instantiate any type outside an allow-list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from medai.data.tabular import TabularSchema, coerce_features
from medai.errors import IntegrityError, MedAIError
from medai.evaluation.metrics import auroc
from medai.models import base

LEARNERS = ("logistic", "random-forest", "lightgbm")
CALIBRATIONS = (None, "isotonic", "sigmoid")
WEIGHTS_FILE = "model.skops"
# skops loads only types whose module starts with one of these
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "lightgbm.", "medai.models.tabular.", "collections.OrderedDict",
                    "builtins.")


def _estimator(name: str, seed: int):
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=5000)
    if name == "random-forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=300, min_samples_leaf=3, max_features="sqrt",
                                      random_state=seed, n_jobs=1)
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=10,
                              subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                              random_state=seed, n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)
    raise MedAIError(f"unknown learner {name!r}; choose one of {', '.join((*LEARNERS, 'auto'))}")


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


class TabularClassifier(ClassifierMixin, BaseEstimator):
    """Binary risk model on a DataFrame of numeric (float) and categorical (object) columns.

    Parameters
    ----------
    learner : "logistic", "random-forest", "lightgbm" or "auto" (best cross-validated AUROC).
    calibration : None, "isotonic" or "sigmoid" (CalibratedClassifierCV, 5-fold, on training data).
    seed : random state for every random step.
    auto_folds : folds of the internal CV used by ``learner="auto"``.
    """

    def __init__(self, learner: str = "auto", calibration: str | None = None, seed: int = 0, auto_folds: int = 3):
        self.learner = learner
        self.calibration = calibration
        self.seed = seed
        self.auto_folds = auto_folds

    def _pipeline(self, name: str) -> Pipeline:
        return Pipeline([("prep", _preprocessor()), ("model", _estimator(name, self.seed))])

    def _select(self, X: pd.DataFrame, y: np.ndarray) -> tuple[str, dict[str, float]]:
        folds = StratifiedKFold(n_splits=self.auto_folds, shuffle=True, random_state=self.seed)
        scores = {}
        for name in LEARNERS:
            fold_scores = []
            for train, test in folds.split(X, y):
                model = self._pipeline(name).fit(X.iloc[train], y[train])
                fold_scores.append(auroc(y[test], model.predict_proba(X.iloc[test])[:, 1]))
            scores[name] = float(np.mean(fold_scores))
        return max(scores, key=scores.get), scores

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> TabularClassifier:
        if self.calibration not in CALIBRATIONS:
            raise MedAIError(f"calibration must be one of isotonic, sigmoid or none, got {self.calibration!r}")
        if not isinstance(X, pd.DataFrame):
            raise MedAIError("TabularClassifier.fit expects a pandas DataFrame of features")
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) != 2:
            raise MedAIError("TabularClassifier needs a target with exactly two classes")
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        if self.learner == "auto":
            self.chosen_learner_, self.selection_scores_ = self._select(X, y)
        else:
            _estimator(self.learner, self.seed)  # validates the name
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
        transformed = self.pipeline_.named_steps["prep"].transform(X)
        self.background_mean_ = np.asarray(transformed, dtype=float).mean(axis=0)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    # -- explanations ------------------------------------------------------------------------------
    def transformed_feature_sources(self) -> list[str]:
        """For each column after preprocessing, the original column it came from."""
        check_is_fitted(self, "model_")
        prep = self.pipeline_.named_steps["prep"]
        originals = sorted(map(str, self.feature_names_in_), key=len, reverse=True)
        sources = []
        for name in prep.get_feature_names_out():
            block, _, rest = name.partition("__")
            if block == "num":
                rest = rest.removeprefix("missingindicator_")
                sources.append(rest)
            else:
                sources.append(next(o for o in originals if rest == o or rest.startswith(o + "_")))
        return sources

    def shap_values(self, X: pd.DataFrame) -> np.ndarray:
        """SHAP values in log-odds, one column per original feature (one-hot and indicator columns summed).

        Linear models: exact SHAP under feature independence, coef * (x - mean of training data).
        Tree models: TreeExplainer (path-dependent). With calibration, the uncalibrated model is explained
        (calibration is a monotone map of its score).
        """
        check_is_fitted(self, "model_")
        transformed = np.asarray(self.pipeline_.named_steps["prep"].transform(X), dtype=float)
        estimator = self.pipeline_.named_steps["model"]
        if self.chosen_learner_ == "logistic":
            values = estimator.coef_[0] * (transformed - self.background_mean_)
        else:
            import warnings

            import shap

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                raw = shap.TreeExplainer(estimator).shap_values(transformed)
            raw = raw[1] if isinstance(raw, list) else raw
            values = raw[:, :, 1] if np.ndim(raw) == 3 else raw
        sources = self.transformed_feature_sources()
        names = list(map(str, self.feature_names_in_))
        out = np.zeros((len(X), len(names)))
        for j, source in enumerate(sources):
            out[:, names.index(source)] += values[:, j]
        return out


class CompiledTabular:
    """The fitted preprocessing and estimator of a :class:`TabularClassifier`, replayed with numpy.

    Serving one record through the scikit-learn pipeline costs milliseconds of pandas and input checks;
    this replays exactly the same arithmetic (median imputation with missing indicators, standard scaling,
    one-hot encoding with unknown categories ignored, the estimator, the calibrator) in microseconds.
    The tests check it against ``TabularClassifier.predict_proba`` on every learner.
    """

    def __init__(self, classifier: TabularClassifier):
        check_is_fitted(classifier, "model_")
        prep = classifier.pipeline_.named_steps["prep"]
        self.numeric: list[str] = []
        self.categorical: list[str] = []
        for name, transformer, columns in prep.transformers_:
            if name == "num" and len(columns):
                self.numeric = list(columns)
                impute, scale = transformer.named_steps["impute"], transformer.named_steps["scale"]
                self.medians = np.asarray(impute.statistics_, dtype=float)
                indicator = getattr(impute, "indicator_", None)
                self.indicator_columns = np.asarray(indicator.features_ if indicator is not None else [], dtype=int)
                self.mean = np.asarray(scale.mean_, dtype=float)
                self.scale = np.asarray(scale.scale_, dtype=float)
            elif name == "cat" and len(columns):
                self.categorical = list(columns)
                encoder = transformer.named_steps["onehot"]
                self.fill = transformer.named_steps["impute"].fill_value
                self.category_index = [{value: i for i, value in enumerate(cats)} for cats in encoder.categories_]
                self.offsets = np.cumsum([0] + [len(c) for c in encoder.categories_])
        self.estimator = classifier.pipeline_.named_steps["model"]
        self.linear = classifier.chosen_learner_ == "logistic"
        self.calibrator = None
        if classifier.calibration:
            self.calibrator = classifier.model_.calibrated_classifiers_[0].calibrators[0]

    def transform(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """``numeric`` (n, len(self.numeric)) float with NaN; ``categorical`` (n, len(self.categorical))."""
        blocks = []
        if self.numeric:
            missing = np.isnan(numeric)
            imputed = np.where(missing, self.medians, numeric)
            stacked = np.hstack([imputed, missing[:, self.indicator_columns].astype(float)])
            blocks.append((stacked - self.mean) / self.scale)
        if self.categorical:
            onehot = np.zeros((len(categorical), int(self.offsets[-1])))
            for j, index in enumerate(self.category_index):
                for i, value in enumerate(categorical[:, j]):
                    key = self.fill if value is None or (isinstance(value, float) and np.isnan(value)) else value
                    position = index.get(key)
                    if position is not None:
                        onehot[i, self.offsets[j] + position] = 1.0
            blocks.append(onehot)
        return np.hstack(blocks) if len(blocks) > 1 else blocks[0]

    def predict_proba(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """Probability of the positive class, shape (n,)."""
        z = self.transform(numeric, categorical)
        if self.linear:
            score = z @ self.estimator.coef_[0] + self.estimator.intercept_[0]
        elif self.calibrator is None:
            return self.estimator.predict_proba(z)[:, 1]
        else:  # the calibrator was fitted on what scikit-learn feeds it: decision_function when available
            score = (self.estimator.decision_function(z) if hasattr(self.estimator, "decision_function")
                     else self.estimator.predict_proba(z)[:, 1])
        if self.calibrator is not None:
            return np.clip(self.calibrator.predict(score), 0.0, 1.0)
        return 1.0 / (1.0 + np.exp(-score))


def save_classifier(model: TabularClassifier) -> bytes:
    import skops.io as sio

    return sio.dumps(model)


def load_classifier(data: bytes, source: str) -> TabularClassifier:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise IntegrityError(f"{source} contains types that are not allowed to load: {refused[:5]}")
    model = sio.loads(data, trusted=untrusted)
    if not isinstance(model, TabularClassifier):
        raise IntegrityError(f"{source} does not hold a MedAI tabular model")
    return model


class TabularModel:
    """A fitted tabular model with its input schema and decision threshold (what predict/serve use)."""

    family = "tabular"

    def __init__(self, classifier: TabularClassifier, schema: TabularSchema, threshold: float, meta: dict[str, Any]):
        self.classifier = classifier
        self.schema = schema
        self.threshold = float(threshold)
        self.meta = meta
        self._compiled: CompiledTabular | None = None
        self._input_schema: list[dict[str, Any]] | None = None

    @property
    def input_schema(self) -> list[dict[str, Any]]:
        """The columns a record needs (built once: the service reads it on every request)."""
        if self._input_schema is None:
            self._input_schema = [c.to_json() for c in self.schema.features]
        return self._input_schema

    def features(self, frame: pd.DataFrame, source: str = "input") -> pd.DataFrame:
        if len(frame) == 0:
            raise MedAIError(f"{source} has no records to predict")
        return coerce_features(frame, self.schema, source)

    def predict_proba(self, frame: pd.DataFrame, source: str = "input") -> np.ndarray:
        return self.classifier.predict_proba(self.features(frame, source))[:, 1]

    def predict_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Positive-class probabilities for records whose values are already typed (numbers as int/float or
        None, categories as str or None), as the service's validated JSON gives them: the fast path."""
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = CompiledTabular(self.classifier)
        numeric = np.array([[np.nan if r.get(c) is None else float(r[c]) for c in compiled.numeric]
                            for r in records], dtype=float).reshape(len(records), len(compiled.numeric))
        categorical = np.array([[None if r.get(c) is None else _category_text(r[c]) for c in compiled.categorical]
                                for r in records], dtype=object).reshape(len(records), len(compiled.categorical))
        return compiled.predict_proba(numeric, categorical)

    def contributions(self, frame: pd.DataFrame, top_k: int = 3, source: str = "input") -> list[list[dict]]:
        """Per record, the ``top_k`` features with the largest |SHAP| (log-odds), with their values."""
        features = self.features(frame, source)
        values = self.classifier.shap_values(features)
        names = self.schema.feature_names
        out = []
        for i in range(len(features)):
            order = np.argsort(-np.abs(values[i]))[:top_k]
            out.append([
                {"feature": names[j], "value": _jsonable(features.iloc[i, j]), "contribution": float(values[i, j])}
                for j in order
            ])
        return out

    def predict_frame(self, frame: pd.DataFrame, explain: bool = False, top_k: int = 3,
                      source: str = "input") -> pd.DataFrame:
        p = self.predict_proba(frame, source)
        out = pd.DataFrame(index=frame.index)
        if self.schema.id_column and self.schema.id_column in frame.columns:
            out[self.schema.id_column] = frame[self.schema.id_column]
        out["probability"] = p
        out["label"] = np.where(p >= self.threshold, self.schema.positive_label, self.schema.classes[0])
        if explain:
            contributions = self.contributions(frame, top_k, source)
            out["top_contributions"] = ["; ".join(f"{c['feature']}={c['contribution']:+.3f}" for c in row)
                                        for row in contributions]
        return out


def _category_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _jsonable(value):
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value


def load_tabular(directory: Path, meta: dict[str, Any]) -> TabularModel:
    path = directory / meta.get("weights", WEIGHTS_FILE)
    classifier = load_classifier(path.read_bytes(), str(path))
    schema = TabularSchema.from_json(meta["input_schema"])
    return TabularModel(classifier, schema, meta["decision"]["threshold"], meta)


base.register_family("tabular", load_tabular)
