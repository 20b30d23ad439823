"""Summary features + gradient boosting: the strong baseline for irregular time series (scikit-learn conventions).

The learner takes :class:`Stays` and computes its features itself, so a stay cut at any hour
(:meth:`Stays.until`) is scored from exactly the data seen by then. It remembers the variables it was trained on;
stays coded against another vocabulary are re-coded (unknown variables dropped) before scoring.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from medai.errors import MedAIError
from medai.modalities.longitudinal.features import feature_names, summarise
from medai.modalities.longitudinal.stays import Stays


def align(stays: Stays, variables: tuple[str, ...]) -> Stays:
    if tuple(stays.variables) == tuple(variables):
        return stays
    aligned, _ = stays.with_variables(tuple(variables))
    return aligned


class SummaryBoosting(BaseEstimator):
    """LightGBM on :mod:`~medai.modalities.longitudinal.features` summaries.

    ``task``: ``binary``/``multiclass`` (``y`` = class index) or ``regression``.
    """

    watches_validation = True

    def __init__(self, task: str = "binary", n_estimators: int = 2000, learning_rate: float = 0.02,
                 num_leaves: int = 15, min_child_samples: int = 20, colsample_bytree: float = 0.5,
                 recent_hours: float = 12.0, seed: int = 0):
        self.task = task
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.recent_hours = recent_hours
        self.seed = seed

    def _estimator(self, n_estimators: int):
        # one thread: LightGBM's OpenMP threads spin-wait, which on a shared machine costs more than it saves
        params = dict(n_estimators=n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                      min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1,
                      colsample_bytree=self.colsample_bytree, reg_lambda=1.0, random_state=self.seed, n_jobs=1,
                      verbosity=-1)
        if self.task == "regression":
            from lightgbm import LGBMRegressor

            return LGBMRegressor(**params)
        if self.task not in ("binary", "multiclass"):
            raise MedAIError(f"summary boosting predicts binary, multiclass or regression targets, not {self.task}")
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**params)

    def features(self, stays: Stays) -> np.ndarray:
        return summarise(align(stays, self.variables_), float(self.recent_hours))

    def fit(self, stays: Stays, y, stays_val: Stays | None = None, y_val=None):
        """Fit; with validation stays, the number of trees is chosen by early stopping on them (then refitted)."""
        self.variables_ = tuple(stays.variables)
        self.feature_names_ = feature_names(self.variables_)
        F = summarise(stays, float(self.recent_hours))
        y = np.asarray(y)
        rounds = int(self.n_estimators)
        if stays_val is not None and y_val is not None and len(stays_val) and len(np.unique(y_val)) > 1:
            import lightgbm

            probe = self._estimator(rounds)
            probe.fit(F, y, eval_X=(self.features(stays_val),), eval_y=(np.asarray(y_val),),
                      callbacks=[lightgbm.early_stopping(100, verbose=False)])
            rounds = max(50, int(probe.best_iteration_ or rounds))
        self.best_iteration_ = rounds
        self.estimator_ = self._estimator(rounds).fit(F, y)
        if self.task != "regression":
            self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, stays: Stays) -> np.ndarray:
        return self.estimator_.predict_proba(self.features(stays))

    def predict(self, stays: Stays) -> np.ndarray:
        return self.estimator_.predict(self.features(stays))

    def contributions(self, stays: Stays) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature SHAP contributions to the log-odds (TreeSHAP, LightGBM's own) and the features."""
        F = self.features(stays)
        contrib = self.estimator_.predict(F, pred_contrib=True)
        if isinstance(contrib, list):  # multiclass: one array per class
            contrib = contrib[-1]
        return np.asarray(contrib)[:, : F.shape[1]], F
