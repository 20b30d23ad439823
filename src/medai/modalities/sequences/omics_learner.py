"""A learner for samples x genes matrices: impute, optional log2(x+1), standardise, SVD (the seeds' SVD; or PCA),
then any tabular learner, as one scikit-learn pipeline, so every step, the SVD included, is fitted on the
training records (training folds in cross-validation) only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from medai.errors import MedAIError

REDUCERS = ("svd", "pca", "none")
CLASSIFIERS = ("logistic", "random-forest", "lightgbm")
REGRESSORS = ("ridge", "random-forest", "lightgbm")


def _log2p(X):
    return np.log2(np.clip(X, 0, None) + 1.0)


class OmicsModel(ClassifierMixin, BaseEstimator):
    """``X``: a DataFrame of samples x features (genes); ``y``: class indices, or values for regression.

    ``n_components``: the number of SVD/PCA components (``None``: min(50, samples - 1, features - 1)).
    """

    def __init__(self, learner: str = "logistic", task: str = "binary", reducer: str = "svd",
                 n_components: int | None = None, log_transform: bool = False, seed: int = 0):
        self.learner = learner
        self.task = task
        self.reducer = reducer
        self.n_components = n_components
        self.log_transform = log_transform
        self.seed = seed

    def _final(self):
        from medai.modalities.tabular.learners import _classifier, _regressor

        if self.task == "regression":
            if self.learner not in REGRESSORS:
                raise MedAIError(f"unknown learner {self.learner!r} for a regression target; choose one of "
                                 f"{', '.join(REGRESSORS)}")
            return _regressor(self.learner, self.seed)
        if self.learner not in CLASSIFIERS:
            raise MedAIError(f"unknown learner {self.learner!r} for expression data; choose one of "
                             f"{', '.join(CLASSIFIERS)}")
        return _classifier(self.learner, self.seed)

    def _pipeline(self, n_samples: int, n_features: int) -> Pipeline:
        from sklearn.decomposition import PCA, TruncatedSVD
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import FunctionTransformer, StandardScaler

        if self.reducer not in REDUCERS:
            raise MedAIError(f"--reducer must be one of {', '.join(REDUCERS)}, got {self.reducer!r}")
        steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
        if self.log_transform:
            steps.append(("log2", FunctionTransformer(_log2p)))
        steps.append(("scale", StandardScaler()))
        limit = max(1, min(n_samples - 1, n_features - 1))
        k = int(self.n_components) if self.n_components else min(50, limit)
        if self.reducer != "none":
            if k > limit:
                raise MedAIError(f"--components {k} is more than the data allow (at most {limit}: fewer than the "
                                 "training samples and the features)")
            steps.append(("svd", TruncatedSVD(n_components=k, random_state=self.seed) if self.reducer == "svd"
                          else PCA(n_components=k, random_state=self.seed)))
        steps.append(("model", self._final()))
        return Pipeline(steps)

    def fit(self, X, y):
        X = self._frame(X)
        self.features_ = list(X.columns)
        y = np.asarray(y)
        if self.task != "regression":
            y = y.astype(int)
            self.classes_ = np.unique(y)
            self.n_classes_ = int(self.classes_.max()) + 1
        self.pipeline_ = self._pipeline(*X.shape).fit(X.to_numpy(dtype=float), y)
        return self

    def _frame(self, X) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=float))
        if hasattr(self, "features_"):
            missing = [c for c in self.features_ if c not in X.columns]
            if len(missing) == len(self.features_):
                raise MedAIError(f"none of the model's {len(self.features_)} features is in the input "
                                 f"(e.g. {self.features_[:3]})")
            X = X.reindex(columns=self.features_)
        return X.apply(pd.to_numeric, errors="coerce")

    def predict_proba(self, X) -> np.ndarray:
        proba = self.pipeline_.predict_proba(self._frame(X).to_numpy(dtype=float))
        out = np.zeros((len(proba), self.n_classes_))
        out[:, self.pipeline_.classes_.astype(int)] = proba
        return out

    def predict(self, X) -> np.ndarray:
        if self.task == "regression":
            return self.pipeline_.predict(self._frame(X).to_numpy(dtype=float))
        return self.predict_proba(X).argmax(axis=1)

    # -- what it learned --------------------------------------------------------------------------------------
    @property
    def reduction(self):
        return self.pipeline_.named_steps.get("svd")

    def explained_variance(self) -> np.ndarray | None:
        reduction = self.reduction
        return None if reduction is None else np.asarray(reduction.explained_variance_ratio_)

    def top_loadings(self, top: int = 5, components: int = 5) -> list[dict]:
        """The genes with the largest absolute loading on each of the first components."""
        reduction = self.reduction
        if reduction is None:
            return []
        share = self.explained_variance()
        rows = []
        for c, loading in enumerate(reduction.components_[:components]):
            order = np.argsort(-np.abs(loading))[:top]
            rows.append({"component": c + 1, "variance": float(share[c]),
                         "genes": [(self.features_[j], float(loading[j])) for j in order]})
        return rows

    def gene_contributions(self, X, output: int) -> np.ndarray | None:
        """Per-sample, per-gene contributions to the log-odds of a linear model on top: the model's weights
        carried back through the SVD onto the standardised genes (``(n, genes)``), or None."""
        model = self.pipeline_.named_steps["model"]
        if not hasattr(model, "coef_") or self.task == "regression":
            return None
        coef = np.atleast_2d(model.coef_)
        row = coef[0] * (1 if output == 1 else -1) if coef.shape[0] == 1 else coef[output]
        reduction = self.reduction
        weights = row @ reduction.components_ if reduction is not None else row
        before = Pipeline([s for s in self.pipeline_.steps if s[0] in ("impute", "log2", "scale")])
        Z = before.transform(self._frame(X).to_numpy(dtype=float))
        if reduction is not None and hasattr(reduction, "mean_"):  # PCA centres again (a no-op after scaling)
            Z = Z - reduction.mean_
        return Z * weights[None, :]

    def describe(self) -> str:
        reduced = {"svd": "truncated SVD", "pca": "PCA", "none": "no reduction"}[self.reducer]
        k = self.reduction.n_components if self.reduction is not None else 0
        log = "log2(x+1), " if self.log_transform else ""
        return f"{self.learner} on {reduced}" + (f" ({k} components)" if k else "") + f" of {log}standardised genes"

