"""Learners on molecular features: random forest, extremely randomised trees, LightGBM, a MinMax-kernel SVM on
Morgan counts (binary targets; :mod:`medai.modalities.molecules.kernels`), and ``auto``, as scikit-learn
estimators that take standardised SMILES.

``auto`` (single-task) starts from a fixed default - for classification the equal-weight mean of random forests
on three views of the molecules (Morgan counts; Morgan counts + RDKit 2D descriptors; descriptors + MACCS), with
the MinMax-kernel SVM on Morgan counts as a fourth member for binary targets, for
regression the mean of extra trees, LightGBM and an RBF SVR on descriptors (:data:`DEFAULTS`) - and replaces it
only when a chosen ensemble clearly beats it inside the training molecules: each candidate (:data:`CANDIDATES`) is
cross-validated in 5 folds of the training molecules (scaffold-grouped folds for a scaffold split, random folds
for a random one), greedy ensemble selection (Caruana et al. 2004) on the out-of-fold outputs gives a weighted
average, and that average is kept only if, cross-fitted (weights chosen on the other folds), it beats the default
on every inner fold. On few folds the candidates' scores differ by less than their noise, so the default stays
unless the evidence is consistent. The test molecules are never seen. Multi-task ``auto`` is the fixed mean of
extra trees and LightGBM on all features (choosing per assay would cost 12 times as much on Tox21).

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

MODELS = ("rf", "extratrees", "lightgbm", "svm", "auto")
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


def minmax_svm(task: str, seed: int, n_estimators: int, n_jobs: int):
    """A support-vector classifier with the MinMax (Tanimoto on counts) kernel on Morgan counts (binary only)."""
    if task != "binary":
        raise MedAIError(f"the MinMax-kernel SVM (svm) is for binary targets, not {task}")
    from medai.modalities.molecules.kernels import MinMaxSVC

    return MinMaxSVC(C=SVM_C, seed=seed)


def columns(F: np.ndarray, cols) -> np.ndarray:
    """The columns a member reads: all (``None``), one range ``(start, stop)``, or several ``((start, stop), ...)``."""
    if cols is None:
        return F
    if isinstance(cols[0], int | np.integer):
        return F[:, cols[0]:cols[1]]
    if len(cols) == 1:
        return F[:, cols[0][0]:cols[0][1]]
    return F[:, np.concatenate([np.arange(a, b) for a, b in cols])]


SVM_C = 3.0  # chosen by 5-fold scaffold-grouped CV inside the BBBP and BACE training molecules (C 0.3-30)
BUILDERS = {"rf": forest, "extratrees": extra_trees, "lightgbm": boosting, "svr": descriptor_svr, "svm": minmax_svm}
DESCRIBED = {"rf": "random forest", "extratrees": "extra trees", "lightgbm": "LightGBM",
             "svr": "SVR on RDKit 2D descriptors", "svm": "MinMax-kernel SVM on Morgan counts"}
ONLY = {"svr": ("rdkit2d",), "svm": ("morgan",)}  # learners that read only this view of the molecules
ALL = ("morgan", "rdkit2d", "maccs")
# what ``auto`` chooses among (learner, feature kinds), by cross-validation inside the training molecules
CANDIDATES = {
    "classification": (("rf", ("morgan",)), ("rf", ("morgan", "rdkit2d")), ("rf", ("rdkit2d", "maccs")),
                       ("extratrees", ALL), ("lightgbm", ALL), ("svm", ("morgan",))),
    "regression": (("rf", ("morgan", "rdkit2d")), ("rf", ("rdkit2d", "maccs")), ("extratrees", ALL),
                   ("lightgbm", ALL), ("svr", ("rdkit2d",))),
}
# what ``auto`` keeps unless the cross-fitted selection beats it on every inner fold: the equal-weight mean of
# these (each also a candidate, so its out-of-fold output costs nothing more)
DEFAULTS = {
    # binary targets also the MinMax-kernel SVM: inside the training molecules (5 scaffold-grouped folds) the
    # four-way mean beat the three forests' mean out of fold on BBBP, BACE and Tox21 NR-AhR (scaffold split) -
    # by 0.001-0.004 ROC-AUC, on 3 of 5 folds each (benchmarks/molecules_inner_cv.py --default-check)
    "classification": (("rf", ("morgan",)), ("rf", ("morgan", "rdkit2d")), ("rf", ("rdkit2d", "maccs")),
                       ("svm", ("morgan",))),
    "regression": (("extratrees", ALL), ("lightgbm", ALL), ("svr", ("rdkit2d",))),
    "multilabel": (("extratrees", ALL), ("lightgbm", ALL)),
}
SELECTION_FOLDS = 5


def _restricted(pairs, kinds: tuple[str, ...], task: str = "binary") -> list[tuple[str, tuple[str, ...]]]:
    out: list[tuple[str, tuple[str, ...]]] = []
    for name, wanted in pairs:
        have = tuple(k for k in wanted if k in kinds)
        if name == "svm" and task != "binary":
            continue
        if have and (name, have) not in out and (name not in ONLY or have == ONLY[name]):
            out.append((name, have))
    return out


def _family(task: str) -> str:
    return "regression" if task == "regression" else "multilabel" if task == "multilabel" else "classification"


def auto_default(task: str, kinds: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """The fixed ensemble ``auto`` keeps (multi-task always; single-task unless the selection clearly beats
    it, or when there are too few molecules to choose on), restricted to the features it was given."""
    return _restricted(DEFAULTS[_family(task)], kinds, task)


def auto_members(task: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The learners of :func:`auto_default`."""
    return tuple(name for name, _ in auto_default(task, kinds))


def auto_candidates(task: str, kinds: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """The (learner, feature kinds) candidates ``auto`` chooses among, restricted to the features it was given;
    the default's members are always among them."""
    pairs = CANDIDATES["regression" if task == "regression" else "classification"]
    return _restricted((*pairs, *DEFAULTS[_family(task)]), kinds, task)


def describe_member(name: str, kinds: tuple[str, ...] | None) -> str:
    return DESCRIBED[name] if name in ONLY or kinds is None else f"{DESCRIBED[name]} on {','.join(kinds)}"


class DomainMixin:
    def fit_domain(self, X) -> None:
        from medai.modalities.molecules.chem import fingerprints, pack

        self.domain_ = pack(fingerprints(list(X)))


class MoleculeForest(DomainMixin, BaseEstimator):
    """Random forest (``rf``), extra trees (``extratrees``), LightGBM (``lightgbm``) or ``auto``.

    ``auto`` (single-task classification and regression) fits each candidate of :data:`CANDIDATES` - a learner
    on a subset of the feature kinds - on ``SELECTION_FOLDS``-fold cross-validation inside the training
    molecules (scaffold-grouped folds when ``selection="scaffold"``, random folds when ``"random"``), chooses a
    weighted average of them by greedy ensemble selection on the out-of-fold outputs
    (:mod:`medai.modalities.molecules.selection`) and keeps it only if it beats the fixed default
    (:func:`auto_default`) on every inner fold, cross-fitted; otherwise the default. The kept members are refitted
    on all the training molecules. Multi-task ``auto`` (and ``auto`` on too few molecules to choose on) is the
    default. What was tried and kept is in ``selection_``."""

    def __init__(self, model: str = "auto", task: str = "binary", features: str = "morgan,rdkit2d,maccs",
                 radius: int = 2, n_bits: int = 2048, n_estimators: int = 500, seed: int = 0, n_jobs: int = 2,
                 selection: str = "scaffold"):
        self.model = model
        self.task = task
        self.features = features
        self.radius = radius
        self.n_bits = n_bits
        self.n_estimators = n_estimators
        self.seed = seed
        self.n_jobs = n_jobs
        self.selection = selection

    @property
    def featurizer(self) -> Featurizer:
        return Featurizer(parse_kinds(self.features), int(self.radius), int(self.n_bits))

    def member_names(self) -> tuple[str, ...]:
        """The learners of the fitted model (before fitting: of the fixed ensemble ``auto`` falls back to)."""
        if self.model not in MODELS:
            raise MedAIError(f"unknown learner {self.model!r}; choose one of {', '.join((*MODELS, 'chemprop'))}")
        if getattr(self, "members_", None):
            return tuple(name for name, _ in self.members_)
        return auto_members(self.task, parse_kinds(self.features)) if self.model == "auto" else (self.model,)

    def describe(self) -> str:
        """One line: the members, their features and weights."""
        members = getattr(self, "members_", None) or [(name, None) for name in self.member_names()]
        weights = self.member_weights(len(members))
        selection = getattr(self, "selection_", {})
        if selection.get("chosen"):
            parts = " + ".join(f"{w:.2f} {describe_member(*m)}" for m, w in zip(members, weights, strict=True))
            if selection.get("kept") == "default":
                return parts + (f" (the default: the selection by {selection['cv']} on the training molecules did "
                                "not beat it on every fold)")
            return parts + f" (chosen by {selection['cv']} on the training molecules)"
        views = {tuple(kinds or self.featurizer.kinds) for _, kinds in members}
        if len(views) == 1:  # one learner, or all members on the same features (models saved before: all of them)
            if len(members) == 1:
                return describe_member(members[0][0], views.pop())
            return " + ".join(DESCRIBED[name] for name, _ in members) + f" (mean) on {','.join(views.pop())}"
        return " + ".join(describe_member(*m) for m in members) + " (mean)"

    def member_weights(self, n: int) -> np.ndarray:
        weights = getattr(self, "weights_", None)
        return np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float)

    def _build(self, name: str):
        return BUILDERS[name](self.task, self.seed, int(self.n_estimators), int(self.n_jobs))

    def _kind_columns(self, kinds: tuple[str, ...] | None) -> tuple | None:
        """The column ranges of the feature kinds ``kinds`` in the featurizer's matrix (``None``: all of it)."""
        featurizer = self.featurizer
        if kinds is None or set(kinds) == set(featurizer.kinds):
            return None
        widths = {"morgan": int(self.n_bits), "rdkit2d": len(featurizer.descriptor_names()), "maccs": 167}
        ranges, start = {}, 0
        for kind in featurizer.kinds:
            ranges[kind], start = (start, start + widths[kind]), start + widths[kind]
        return tuple(ranges[kind] for kind in featurizer.kinds if kind in kinds)

    def _fixed_members(self) -> list[tuple[str, tuple[str, ...] | None]]:
        if self.model == "auto":
            return list(auto_default(self.task, self.featurizer.kinds))
        if self.model == "svm":
            if "morgan" not in self.featurizer.kinds:
                raise MedAIError("the MinMax-kernel SVM (svm) reads Morgan counts: add morgan to --features")
            return [("svm", ("morgan",))]
        return [(self.model, None)]

    def fitted_columns(self, members) -> list:
        """The columns of each fitted member (all of them for models saved before members had their own)."""
        return getattr(self, "columns_", None) or [None] * len(members)

    def fit(self, X, y):
        F = self.featurizer.transform(X)
        y = np.asarray(y)
        self.n_features_ = F.shape[1]
        self.weights_ = None
        self.selection_ = {}
        if self.task == "multilabel":
            self.members_ = self._fixed_members()
            self.columns_ = [self._kind_columns(kinds) for _, kinds in self.members_]
            self.estimators_ = [self._fit_label(F, y[:, j]) for j in range(y.shape[1])]
        else:
            if self.task != "regression":
                self.classes_ = np.unique(y.astype(int))
                self.n_classes_ = int(self.classes_.max()) + 1
            self.members_ = self._choose(X, F, y) if self.model == "auto" else self._fixed_members()
            self.columns_ = [self._kind_columns(kinds) for _, kinds in self.members_]
            self.estimators_ = [[self._build(name).fit(columns(F, cols), y)
                                 for (name, _), cols in zip(self.members_, self.columns_, strict=True)]]
        self.fit_domain(X)
        return self

    def _choose(self, X, F, y) -> list[tuple[str, tuple[str, ...] | None]]:
        """Cross-validation inside the training molecules, greedy ensemble selection, and the check that the
        selection clearly beats the fixed default (cross-fitted, on every fold); sets ``weights_``."""
        from medai.modalities.molecules.selection import (
            crossfit_gain,
            ensemble_selection,
            fold_scores,
            inner_folds,
            scorer,
        )

        folds = inner_folds(list(X), y, self.task, self.selection, int(self.seed), SELECTION_FOLDS)
        if folds is None:
            self.selection_ = {"chosen": False, "why": f"too few molecules for {SELECTION_FOLDS}-fold selection"}
            return self._fixed_members()
        candidates = auto_candidates(self.task, self.featurizer.kinds)
        default = auto_default(self.task, self.featurizer.kinds)
        metric, score = scorer(self.task)
        oof = [self._out_of_fold(F, y, name, self._kind_columns(kinds), folds) for name, kinds in candidates]
        default_oof = np.mean([oof[candidates.index(member)] for member in default], axis=0)
        weights = ensemble_selection(oof, y, score)
        chosen = np.flatnonzero(weights > 0)
        ensemble = np.sum([weights[i] * oof[i] for i in chosen], axis=0)
        gains = crossfit_gain(oof, default_oof, y, score, folds)
        selected = bool(np.all(gains > 0))
        cv = f"{SELECTION_FOLDS}-fold {self.selection}-grouped CV".replace("random-grouped", "random")
        self.selection_ = {
            "chosen": True, "cv": cv, "metric": metric,
            "scores": {describe_member(*c): round(score(y, o), 4) for c, o in zip(candidates, oof, strict=True)},
            "weights": {describe_member(*candidates[i]): round(float(weights[i]), 4) for i in chosen},
            "ensemble_score": round(score(y, ensemble), 4),
            "default": [describe_member(*m) for m in default], "default_score": round(score(y, default_oof), 4),
            "default_fold_scores": [round(float(v), 4) for v in fold_scores(default_oof, y, score, folds)],
            "crossfit_gain": [round(float(g), 4) for g in gains],
            "kept": "selection" if selected else "default"}
        if not selected:
            self.weights_ = [1.0 / len(default)] * len(default)
            return list(default)
        self.weights_ = [float(weights[i]) for i in chosen]
        return [candidates[i] for i in chosen]

    def _out_of_fold(self, F, y, name, cols, folds) -> np.ndarray:
        out = np.zeros(len(y)) if self.task == "regression" else np.zeros((len(y), self.n_classes_))
        for train, val in folds:
            member = self._build(name).fit(columns(F[train], cols), y[train])
            if self.task == "regression":
                out[val] = member.predict(columns(F[val], cols))
            else:
                out[np.ix_(val, member.classes_.astype(int))] = member.predict_proba(columns(F[val], cols))
        return out

    def _fit_label(self, F, yj):
        known = ~np.isnan(yj)
        values = yj[known].astype(int)
        if len(np.unique(values)) < 2:  # a task with one known value: its rate as a constant
            return [float(values.mean()) if len(values) else 0.0]
        return [self._build(name).fit(columns(F[known], cols), values)
                for (name, _), cols in zip(self.members_, self.columns_, strict=True)]

    # -- outputs ---------------------------------------------------------------------------------------------
    def output(self, F) -> np.ndarray:
        """What the road scores, from a feature matrix: class probabilities ``(n, k)``, label probabilities
        ``(n, L)`` or values ``(n,)``: the (weighted) mean of the members'."""
        if self.task == "multilabel":
            return np.column_stack([self._positive(members, F) for members in self.estimators_])
        fitted = self.estimators_[0]
        members = list(zip(fitted, self.fitted_columns(fitted), self.member_weights(len(fitted)), strict=True))
        if self.task == "regression":
            return np.sum([w * m.predict(columns(F, cols)) for m, cols, w in members], axis=0)
        proba = np.zeros((len(F), self.n_classes_))
        for m, cols, w in members:
            proba[:, m.classes_.astype(int)] += w * m.predict_proba(columns(F, cols))
        return proba

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
