"""LightGBM on summaries and GRU-D, their probabilities averaged: two views of a stay (what its summaries say and
how its series unfolded hour by hour) whose errors differ, so the mean ranks stays better than either.

Both members are causal - each scores a stay from the data seen up to its horizon - so the average is too, and it
answers ``medai predict``, ``medai stream replay`` and the service like either member. Files: each member's own
(LightGBM's text model, safetensors) plus a JSON config; nothing runs code on load.
"""

from __future__ import annotations

import json

import numpy as np
from sklearn.base import BaseEstimator

from medai.errors import MedAIError
from medai.modalities.longitudinal.stays import Stays

ENSEMBLE = "ensemble.json"


class AveragedLearners(BaseEstimator):
    """``weight`` x LightGBM on summaries + (1 - ``weight``) x GRU-D, trained on the same stays."""

    watches_validation = True

    def __init__(self, n_classes: int = 2, weight: float = 0.5, epochs: int = 30, seed: int = 0, threads: int = 1,
                 progress: bool = False):
        self.n_classes = n_classes
        self.weight = weight
        self.epochs = epochs
        self.seed = seed
        self.threads = threads
        self.progress = progress

    def describe(self) -> str:
        return f"mean of LightGBM on summaries (weight {self.weight:g}) and GRU-D (weight {1 - self.weight:g})"

    def fit(self, stays: Stays, y, stays_val: Stays | None = None, y_val=None):
        from medai.modalities.longitudinal.learners import SummaryBoosting
        from medai.modalities.longitudinal.networks import SequenceNetwork

        if not 0.0 <= float(self.weight) <= 1.0:
            raise MedAIError(f"the ensemble's weight must lie in [0, 1], got {self.weight}")
        task = "binary" if int(self.n_classes) == 2 else "multiclass"
        self.boosting_ = SummaryBoosting(task=task, seed=int(self.seed)).fit(stays, y, stays_val, y_val)
        self.network_ = SequenceNetwork(architecture="grud", n_classes=int(self.n_classes), epochs=int(self.epochs),
                                        seed=int(self.seed), threads=int(self.threads),
                                        progress=bool(self.progress)).fit(stays, y, stays_val, y_val)
        self._fitted()
        return self

    def _fitted(self) -> None:
        self.classes_ = np.arange(int(self.n_classes))
        self.variables_ = self.boosting_.variables_
        self.best_epoch_ = self.network_.best_epoch_
        self.best_iteration_ = self.boosting_.best_iteration_

    def member_probabilities(self, stays: Stays) -> tuple[np.ndarray, np.ndarray]:
        """Each member's ``(n, n_classes)`` probabilities: LightGBM's, GRU-D's."""
        boosted = self.boosting_.predict_proba(stays)
        if boosted.shape[1] < int(self.n_classes):  # a class absent from training: LightGBM never predicts it
            boosted = np.pad(boosted, ((0, 0), (0, int(self.n_classes) - boosted.shape[1])))
        return boosted, self.network_.predict_proba(stays)

    def predict_proba(self, stays: Stays) -> np.ndarray:
        boosted, network = self.member_probabilities(stays)
        return float(self.weight) * boosted + (1.0 - float(self.weight)) * network

    def predict(self, stays: Stays) -> np.ndarray:
        return self.predict_proba(stays).argmax(axis=1)

    def to_files(self) -> dict[str, bytes]:
        files = {**self.boosting_.to_files(), **self.network_.to_files()}
        files[ENSEMBLE] = json.dumps({"params": self.get_params()}).encode()
        return files

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> AveragedLearners:
        from medai.modalities.longitudinal.learners import BOOSTER, STATE, SummaryBoosting
        from medai.modalities.longitudinal.networks import CONFIG, WEIGHTS, SequenceNetwork

        learner = cls(**json.loads(files[ENSEMBLE])["params"])
        learner.boosting_ = SummaryBoosting.from_files(files[BOOSTER], files[STATE])
        learner.network_ = SequenceNetwork.from_files(files[WEIGHTS], files[CONFIG])
        learner._fitted()
        return learner
