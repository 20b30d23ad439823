"""Summary features + gradient boosting: the strong baseline for irregular time series (scikit-learn conventions).

The learner takes :class:`Stays` and computes its features itself, so a stay cut at any hour
(:meth:`Stays.until`) is scored from exactly the data seen by then. It remembers the variables it was trained on;
stays coded against another vocabulary are re-coded (unknown variables dropped) before scoring.
"""

from __future__ import annotations

import json

import numpy as np
from sklearn.base import BaseEstimator

from medai.errors import MedAIError
from medai.modalities.longitudinal.derived import SAPS_NAMES, derived_names, saps, with_derived
from medai.modalities.longitudinal.features import EXTENDED, STATS, feature_names, summarise
from medai.modalities.longitudinal.stays import Stays

BOOSTER, STATE = "booster.txt", "summary_boosting.json"


def align(stays: Stays, variables: tuple[str, ...]) -> Stays:
    if tuple(stays.variables) == tuple(variables):
        return stays
    aligned, _ = stays.with_variables(tuple(variables))
    return aligned


class SummaryBoosting(BaseEstimator):
    """LightGBM on :mod:`~medai.modalities.longitudinal.features` summaries.

    ``task``: ``binary``/``multiclass`` (``y`` = class index) or ``regression``. ``augment_hours``: every
    training stay is also seen cut at these hours (comma-separated; empty for none), with its outcome, so the
    model has learned to score a stay from partial data (early warning); the features carry the hours seen.
    Those cut copies weigh ``augment_weight`` each, the whole window 1; cuts at or beyond the longest training
    window are skipped (they would repeat the whole stays). ``summaries``: ``extended`` (default) adds the
    derived variables and SAPS-I of :mod:`~medai.modalities.longitudinal.derived` and the :data:`EXTENDED`
    statistics; ``basic`` is the original set (:data:`STATS` over the recorded variables).
    """

    watches_validation = True

    def __init__(self, task: str = "binary", n_estimators: int = 2000, learning_rate: float = 0.02,
                 num_leaves: int = 15, min_child_samples: int = 20, colsample_bytree: float = 0.5,
                 recent_hours: float = 12.0, augment_hours: str = "12,24,36", augment_weight: float = 0.5,
                 summaries: str = "extended", seed: int = 0):
        self.task = task
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.recent_hours = recent_hours
        self.augment_hours = augment_hours
        self.augment_weight = augment_weight
        self.summaries = summaries
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

    @property
    def stats_(self) -> tuple[str, ...]:
        return EXTENDED if self.summaries == "extended" else STATS

    def _set_variables(self, variables: tuple[str, ...]) -> None:
        if self.summaries not in ("extended", "basic"):
            raise MedAIError(f"summaries must be 'extended' or 'basic', not {self.summaries!r}")
        self.variables_ = tuple(variables)
        extended = self.summaries == "extended"
        self.summary_variables_ = self.variables_ + (derived_names(self.variables_) if extended else ())
        self.feature_names_ = feature_names(self.summary_variables_, self.stats_) + \
            (list(SAPS_NAMES) if extended else [])

    def _summarise(self, stays: Stays) -> np.ndarray:
        if self.summaries != "extended":
            return summarise(stays, float(self.recent_hours))
        full = with_derived(stays)
        return np.hstack([summarise(full, float(self.recent_hours), EXTENDED), saps(full)])

    def features(self, stays: Stays) -> np.ndarray:
        return self._summarise(align(stays, self.variables_))

    def fit(self, stays: Stays, y, stays_val: Stays | None = None, y_val=None):
        """Fit; with validation stays, the number of trees is chosen by early stopping on them (then refitted)."""
        self._set_variables(tuple(stays.variables))
        y = np.asarray(y)
        F = self._summarise(stays)
        weight = np.ones(len(y))
        longest = float(np.max(stays.horizon)) if len(stays) else 0.0
        cuts = [float(h) for h in str(self.augment_hours or "").split(",") if h.strip() and float(h) < longest]
        self.cuts_ = cuts
        if cuts:
            F = np.concatenate([F, *(self._summarise(stays.until(h)) for h in cuts)])
            weight = np.concatenate([weight, np.full(len(y) * len(cuts), float(self.augment_weight))])
            y = np.concatenate([y] * (len(cuts) + 1))
        rounds = int(self.n_estimators)
        if stays_val is not None and y_val is not None and len(stays_val) and len(np.unique(y_val)) > 1:
            import lightgbm

            probe = self._estimator(rounds)
            probe.fit(F, y, sample_weight=weight, eval_X=(self.features(stays_val),), eval_y=(np.asarray(y_val),),
                      callbacks=[lightgbm.early_stopping(100, verbose=False)])
            rounds = max(50, int(probe.best_iteration_ or rounds))
        self.best_iteration_ = rounds
        estimator = self._estimator(rounds).fit(F, y, sample_weight=weight)
        self.booster_ = estimator.booster_
        if self.task != "regression":
            self.classes_ = np.asarray(estimator.classes_)
        return self

    def _raw(self, F: np.ndarray, **kwargs) -> np.ndarray:
        return np.asarray(self.booster_.predict(F, **kwargs))

    def predict_proba(self, stays: Stays) -> np.ndarray:
        out = self._raw(self.features(stays))
        if out.ndim == 1:  # binary: the positive class's probability
            out = np.column_stack([1.0 - out, out])
        proba = np.zeros((len(out), int(self.classes_.max()) + 1))
        proba[:, self.classes_.astype(int)] = out
        return proba

    def predict(self, stays: Stays) -> np.ndarray:
        if self.task == "regression":
            return self._raw(self.features(stays))
        return self.predict_proba(stays).argmax(axis=1)

    def contributions(self, stays: Stays) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature SHAP contributions to the log-odds (TreeSHAP, LightGBM's own) and the features."""
        F = self.features(stays)
        contrib = self._raw(F, pred_contrib=True)
        width = F.shape[1] + 1
        if contrib.shape[1] > width:  # multiclass: one block per class, the last class's
            contrib = contrib[:, -width:]
        return contrib[:, : F.shape[1]], F

    # -- files: LightGBM's own text model + JSON (nothing runs on load) ---------------------------------------
    def to_files(self) -> dict[str, bytes]:
        state = {"params": self.get_params(), "variables": list(self.variables_),
                 "best_iteration": int(self.best_iteration_),
                 "classes": None if self.task == "regression" else self.classes_.tolist()}
        return {BOOSTER: self.booster_.model_to_string().encode(), STATE: json.dumps(state).encode()}

    @classmethod
    def from_files(cls, booster: bytes, state_bytes: bytes) -> SummaryBoosting:
        import lightgbm

        state = json.loads(state_bytes)
        learner = cls(**{"summaries": "basic", **state["params"]})  # models saved before summaries existed: basic
        learner._set_variables(tuple(state["variables"]))
        learner.best_iteration_ = int(state["best_iteration"])
        if state["classes"] is not None:
            learner.classes_ = np.asarray(state["classes"])
        learner.booster_ = lightgbm.Booster(model_str=booster.decode())
        return learner
