"""Learners on molecular features: random forest, extremely randomised trees, LightGBM, and an ensemble of them
(``auto``), as scikit-learn estimators that take standardised SMILES.

``auto`` is the mean of extra trees and LightGBM on all the features (classification), plus, for regression, a
support-vector regressor on the RDKit 2D descriptors (smooth in the physico-chemical properties, where trees
extrapolate in steps). The members were chosen by scaffold-grouped (classification) or random (regression)
3-fold cross-validation on the training molecules of BBBP, BACE and ESOL - never on a test set: among random
forest on Morgan counts, random forest on descriptors + MACCS, extra trees, LightGBM, logistic regression and
ridge/SVR on descriptors and their pairs, these were the best on every set (``benchmarks/molecules.py``).

``task`` is the road's kind of target: ``binary``/``multiclass`` (``y`` = class index), ``multilabel``
(``(n, L)`` 0/1 with NaN where a task's label is unknown: one model per task, fitted on the molecules whose
label is known) or ``regression``. Every fitted learner keeps the Morgan bit fingerprints of its training
molecules (``domain_``, packed bits) for the applicability domain - never their SMILES.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, clone

from medai.errors import MedAIError
from medai.modalities.molecules.features import Featurizer, parse_kinds

MODELS = ("rf", "extratrees", "lightgbm", "auto")
EMBED = ("MolWt", "MolLogP", "TPSA", "NumHDonors", "NumHAcceptors", "NumRotatableBonds", "RingCount",
         "NumAromaticRings", "FractionCSP3", "HeavyAtomCount")


def compact_descriptors(X) -> np.ndarray:
    """Ten physico-chemical descriptors: the representation the conformal difficulty estimate learns from."""
    featurizer = Featurizer(("rdkit2d",))
    names = featurizer.descriptor_names()
    return np.nan_to_num(featurizer.transform(X)[:, [names.index(n) for n in EMBED]])


def forest(task: str, seed: int, n_estimators: int, n_jobs: int):
    if task == "regression":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=n_estimators, max_features=0.3, min_samples_leaf=1,
                                     random_state=seed, n_jobs=n_jobs)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=n_estimators, max_features="sqrt", min_samples_leaf=1,
                                  random_state=seed, n_jobs=n_jobs)


def boosting(task: str, seed: int, n_estimators: int, n_jobs: int):
    # one thread: LightGBM's OpenMP threads spin-wait, which on a shared or busy machine costs far more than it saves
    params = dict(n_estimators=n_estimators, learning_rate=0.03, num_leaves=31, min_child_samples=10,
                  subsample=0.8, subsample_freq=1, colsample_bytree=0.3, reg_lambda=1.0, random_state=seed,
                  n_jobs=1, verbosity=-1)
    if task == "regression":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(**params)
    from lightgbm import LGBMClassifier

    return LGBMClassifier(**params)


def extra_trees(task: str, seed: int, n_estimators: int, n_jobs: int):
    if task == "regression":
        from sklearn.ensemble import ExtraTreesRegressor

        return ExtraTreesRegressor(n_estimators=n_estimators, max_features=0.3, random_state=seed, n_jobs=n_jobs)
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(n_estimators=n_estimators, max_features="sqrt", random_state=seed, n_jobs=n_jobs)


def descriptor_svr(task: str, seed: int, n_estimators: int, n_jobs: int):
    """An RBF support-vector regressor on Gaussian-quantile-scaled descriptors (regression only)."""
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer, StandardScaler
    from sklearn.svm import SVR

    return make_pipeline(SimpleImputer(strategy="median"), VarianceThreshold(),
                         QuantileTransformer(n_quantiles=200, output_distribution="normal", random_state=seed),
                         StandardScaler(), SVR(C=5.0, epsilon=0.05, gamma="scale"))


def columns(F: np.ndarray, cols: tuple[int, int] | None) -> np.ndarray:
    return F if cols is None else F[:, cols[0]:cols[1]]


BUILDERS = {"rf": forest, "extratrees": extra_trees, "lightgbm": boosting, "svr": descriptor_svr}
DESCRIBED = {"rf": "random forest", "extratrees": "extra trees", "lightgbm": "LightGBM",
             "svr": "SVR on RDKit 2D descriptors"}


def auto_members(task: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    if task == "regression" and "rdkit2d" in kinds:
        return ("extratrees", "lightgbm", "svr")
    return ("extratrees", "lightgbm")


class DomainMixin:
    def fit_domain(self, X) -> None:
        from medai.modalities.molecules.chem import fingerprints, pack

        self.domain_ = pack(fingerprints(list(X)))


class MoleculeForest(DomainMixin, BaseEstimator):
    """Random forest (``rf``), extra trees (``extratrees``), LightGBM (``lightgbm``) or the ensemble (``auto``:
    the mean of its members' outputs, see :func:`auto_members`) on molecular features."""

    def __init__(self, model: str = "auto", task: str = "binary", features: str = "morgan,rdkit2d,maccs",
                 radius: int = 2, n_bits: int = 2048, n_estimators: int = 500, seed: int = 0, n_jobs: int = 2):
        self.model = model
        self.task = task
        self.features = features
        self.radius = radius
        self.n_bits = n_bits
        self.n_estimators = n_estimators
        self.seed = seed
        self.n_jobs = n_jobs

    @property
    def featurizer(self) -> Featurizer:
        return Featurizer(parse_kinds(self.features), int(self.radius), int(self.n_bits))

    def member_names(self) -> tuple[str, ...]:
        if self.model not in MODELS:
            raise MedAIError(f"unknown learner {self.model!r}; choose one of {', '.join((*MODELS, 'chemprop'))}")
        return auto_members(self.task, parse_kinds(self.features)) if self.model == "auto" else (self.model,)

    def _members(self) -> list:
        return [BUILDERS[name](self.task, self.seed, int(self.n_estimators), int(self.n_jobs))
                for name in self.member_names()]

    def _columns(self) -> list:
        """The feature columns each member reads (``(start, stop)``): the descriptors for the SVR, all (``None``)
        for the trees."""
        featurizer = self.featurizer
        out = []
        for name in self.member_names():
            if name == "svr":
                start = featurizer.names().index(featurizer.descriptor_names()[0])
                out.append((start, start + len(featurizer.descriptor_names())))
            else:
                out.append(None)
        return out

    def fitted_columns(self, members) -> list:
        """The columns of each fitted member (all of them for models saved before members had their own)."""
        return getattr(self, "columns_", None) or [None] * len(members)

    def fit(self, X, y):
        F = self.featurizer.transform(X)
        y = np.asarray(y)
        self.n_features_ = F.shape[1]
        self.columns_ = self._columns()
        if self.task == "multilabel":
            self.estimators_ = [self._fit_label(F, y[:, j]) for j in range(y.shape[1])]
        else:
            if self.task != "regression":
                self.classes_ = np.unique(y.astype(int))
                self.n_classes_ = int(self.classes_.max()) + 1
            members = zip(self._members(), self.columns_, strict=True)
            self.estimators_ = [[member.fit(columns(F, cols), y) for member, cols in members]]
        self.fit_domain(X)
        return self

    def _fit_label(self, F, yj):
        known = ~np.isnan(yj)
        values = yj[known].astype(int)
        if len(np.unique(values)) < 2:  # a task with one known value: its rate as a constant
            return [float(values.mean()) if len(values) else 0.0]
        members = zip(self._members(), self.columns_, strict=True)
        return [member.fit(columns(F[known], cols), values) for member, cols in members]

    # -- outputs ---------------------------------------------------------------------------------------------
    def output(self, F) -> np.ndarray:
        """What the road scores, from a feature matrix: class probabilities ``(n, k)``, label probabilities
        ``(n, L)`` or values ``(n,)``."""
        if self.task == "multilabel":
            return np.column_stack([self._positive(members, F) for members in self.estimators_])
        members = list(zip(self.estimators_[0], self.fitted_columns(self.estimators_[0]), strict=True))
        if self.task == "regression":
            return np.mean([m.predict(columns(F, cols)) for m, cols in members], axis=0)
        proba = np.zeros((len(F), self.n_classes_))
        for m, cols in members:
            proba[:, m.classes_.astype(int)] += m.predict_proba(columns(F, cols))
        return proba / len(members)

    def _positive(self, members, F) -> np.ndarray:
        if isinstance(members[0], float):
            return np.full(len(F), members[0])
        return np.mean([m.predict_proba(columns(F, cols))[:, list(m.classes_).index(1)]
                        for m, cols in zip(members, self.fitted_columns(members), strict=True)], axis=0)

    def predict_proba(self, X) -> np.ndarray:
        return self.output(self.featurizer.transform(X))

    def predict(self, X) -> np.ndarray:
        out = self.predict_proba(X)
        if self.task == "regression":
            return out
        if self.task == "multilabel":
            return (out >= 0.5).astype(int)
        return out.argmax(axis=1)

    def embed(self, X) -> np.ndarray:
        return compact_descriptors(X)


def clone_forest(learner: MoleculeForest) -> MoleculeForest:
    return clone(learner)
