"""The molecule learners: ``auto``'s choice of learners and feature sets by cross-validation inside the training
molecules (scaffold-grouped folds, greedy ensemble selection), the fixed ensemble it falls back to, the columns
each member reads, the weights' round trip through skops, models saved before members had their own columns and
weights, bad input, and the extra-trees learner through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_data
from test_cli import run

pytest.importorskip("rdkit")

from medai.errors import MedAIError  # noqa: E402
from medai.modalities import get_modality  # noqa: E402
from medai.modalities.molecules import learners, selection  # noqa: E402
from medai.modalities.molecules.features import Featurizer  # noqa: E402
from medai.modalities.molecules.learners import (  # noqa: E402
    MoleculeForest,
    auto_candidates,
    auto_default,
    auto_members,
    columns,
)

ESOL = "molecules/moleculenet_chemprop/delaney.csv"
BBBP = "molecules/moleculenet_chemprop/bbbp.csv"


def sample(relative: str, n: int) -> pd.DataFrame:
    return pd.read_csv(require_data(relative)).sample(n, random_state=0).reset_index(drop=True)


def test_auto_members_depend_on_the_task_and_the_features():
    assert auto_default("binary", ("morgan", "rdkit2d", "maccs")) == [
        ("rf", ("morgan",)), ("rf", ("morgan", "rdkit2d")), ("rf", ("rdkit2d", "maccs")), ("svm", ("morgan",))]
    assert auto_default("binary", ("morgan", "maccs")) == [("rf", ("morgan",)), ("rf", ("maccs",)),
                                                           ("svm", ("morgan",))]
    assert auto_default("binary", ("rdkit2d", "maccs")) == [  # no counts, no SVM
        ("rf", ("rdkit2d",)), ("rf", ("rdkit2d", "maccs"))]
    assert auto_default("multiclass", ("morgan",)) == [("rf", ("morgan",))]  # the views collapse to one, no SVM
    assert auto_members("multilabel", ("morgan",)) == ("extratrees", "lightgbm")
    multitask = MoleculeForest("auto", "multilabel", "morgan,maccs")
    multitask.members_ = multitask._fixed_members()
    assert multitask.describe() == "extra trees + LightGBM (mean) on morgan,maccs"
    assert auto_members("regression", ("morgan", "rdkit2d", "maccs")) == ("extratrees", "lightgbm", "svr")
    assert auto_members("regression", ("morgan", "maccs")) == ("extratrees", "lightgbm")  # no descriptors, no SVR


def test_fixed_regression_ensemble_is_the_mean_of_its_members_and_the_svr_reads_only_the_descriptors():
    """The fixed ensemble ``auto`` falls back to (here forced: too few molecules per fold to choose on)."""
    frame = sample(ESOL, 120)
    X, y = frame["smiles"].to_numpy(dtype=object), frame["logp"].to_numpy(float)
    learner = MoleculeForest("auto", "regression", "morgan,rdkit2d,maccs", n_bits=256, n_estimators=30,
                             n_jobs=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection, "MIN_PER_FOLD", 1000)
        learner.fit(X[:100], y[:100])
    assert learner.selection_ == {"chosen": False, "why": "too few molecules for 5-fold selection"}
    featurizer = learner.featurizer
    start = featurizer.names().index("MaxAbsEStateIndex")  # the first RDKit descriptor, after 256 Morgan counts
    assert start == 256 and learner.columns_ == [None, None, ((256, 256 + len(featurizer.descriptor_names())),)]
    F = featurizer.transform(X[100:])
    members = [m.predict(columns(F, cols)) for m, cols in zip(learner.estimators_[0], learner.columns_, strict=True)]
    assert np.allclose(learner.predict(X[100:]), np.mean(members, axis=0))
    assert learner.estimators_[0][2].n_features_in_ == len(featurizer.descriptor_names())
    assert np.sqrt(np.mean((learner.predict(X[100:]) - y[100:]) ** 2)) < np.std(y[100:])  # learns something

    modality = get_modality("molecules")  # the weights' round trip: skops with allow-listed types only
    files = modality.save_learner(learner)
    loaded = _load(modality, files)
    assert np.array_equal(loaded.predict(X[100:]), learner.predict(X[100:]))


def _load(modality, files):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        return modality.load_learner(Path(tmp), {})


def test_fixed_classifier_ensemble_averages_forests_on_each_view_and_old_models_still_predict():
    frame = sample(BBBP, 120)
    X, y = frame["smiles"].to_numpy(dtype=object), frame["p_np"].to_numpy(int)
    learner = MoleculeForest("auto", "binary", "morgan,rdkit2d", n_bits=256, n_estimators=30, n_jobs=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection, "MIN_PER_FOLD", 1000)
        learner.fit(X[:100], y[:100])
    kinds = [type(m).__name__ for m in learner.estimators_[0]]
    assert kinds == ["RandomForestClassifier"] * 3 + ["MinMaxSVC"]
    n_desc = len(learner.featurizer.descriptor_names())
    # Morgan counts alone; Morgan counts + descriptors (all columns); descriptors (+ MACCS, not given here); the
    # SVM on Morgan counts
    assert learner.columns_ == [((0, 256),), None, ((256, 256 + n_desc),), ((0, 256),)]
    assert [m.n_features_in_ for m in learner.estimators_[0]] == [256, 256 + n_desc, n_desc, 256]
    assert learner.describe() == ("random forest on morgan + random forest on morgan,rdkit2d + random forest on "
                                  "rdkit2d + MinMax-kernel SVM on Morgan counts (mean)")
    F = learner.featurizer.transform(X[100:])
    expected = np.mean([m.predict_proba(columns(F, c)) for m, c in zip(learner.estimators_[0], learner.columns_,
                                                                        strict=True)], axis=0)
    assert np.allclose(learner.predict_proba(X[100:]), expected)

    old = MoleculeForest("auto", "binary", "morgan,rdkit2d", n_bits=256, n_estimators=30, n_jobs=1)
    with pytest.MonkeyPatch.context() as patch:  # a model saved before members had columns and weights: the mean
        patch.setattr(selection, "MIN_PER_FOLD", 1000)
        patch.setattr(learners, "DEFAULTS", {**learners.DEFAULTS, "classification": (
            ("extratrees", learners.ALL), ("lightgbm", learners.ALL))})
        old.fit(X[:100], y[:100])
    expected = np.mean([m.predict_proba(F) for m in old.estimators_[0]], axis=0)
    old.members_ = [(name, None) for name, _ in old.members_]
    del old.columns_, old.weights_
    assert np.allclose(old.predict_proba(X[100:]), expected)
    assert old.describe() == "extra trees + LightGBM (mean) on morgan,rdkit2d"


def test_extra_trees_learner_through_the_cli(tmp_path, capsys):
    frame = sample(BBBP, 150)
    frame.to_csv(tmp_path / "bbbp.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "bbbp.csv", "--target", "p_np", "--learner", "et",
                             "--n-estimators", "40", "--features", "morgan,maccs", "--split", "random",
                             "--out", tmp_path / "m", "--no-register", "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["learner"] == "extra trees on morgan,maccs" and 0.0 <= metrics["test"]["auroc"]["value"] <= 1.0
    code, _, err = run(["predict", tmp_path / "m", "--smiles", "CCO", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    assert {"in_domain", "nearest_train_similarity"} <= set(pd.read_csv(tmp_path / "p.csv").columns)
    assert Featurizer(("morgan", "maccs")).names()[-1] == "maccs_166"


# -- auto's choice inside the training molecules -----------------------------------------------------------------

def test_auto_candidates_are_restricted_to_the_features_given():
    assert auto_candidates("binary", ("morgan", "rdkit2d", "maccs")) == [
        ("rf", ("morgan",)), ("rf", ("morgan", "rdkit2d")), ("rf", ("rdkit2d", "maccs")),
        ("extratrees", ("morgan", "rdkit2d", "maccs")), ("lightgbm", ("morgan", "rdkit2d", "maccs")),
        ("svm", ("morgan",))]
    assert auto_candidates("binary", ("morgan",)) == [("rf", ("morgan",)), ("extratrees", ("morgan",)),
                                                      ("lightgbm", ("morgan",)), ("svm", ("morgan",))]
    assert ("svr", ("rdkit2d",)) in auto_candidates("regression", ("morgan", "rdkit2d"))
    assert all(name != "svr" for name, _ in auto_candidates("regression", ("morgan", "maccs")))


def test_scaffold_grouped_folds_keep_every_scaffold_on_one_side():
    frame = sample(BBBP, 300)
    X, y = frame["smiles"].tolist(), frame["p_np"].to_numpy(int)
    folds = selection.inner_folds(X, y, "binary", "scaffold", seed=0)
    groups = selection.scaffold_groups(X)
    assert len(folds) == 3
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(300))  # each molecule once
    for train, val in folds:
        assert not set(groups[train]) & set(groups[val])
        assert abs(len(val) - 100) < 40  # about equal folds
    other = selection.inner_folds(X, y, "binary", "scaffold", seed=1)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))  # the seed shuffles
    random = selection.inner_folds(X, y, "binary", "random", seed=0)
    assert any(set(groups[tr]) & set(groups[va]) for tr, va in random)  # random folds share scaffolds
    assert selection.inner_folds(X[:10], y[:10], "binary", "scaffold", seed=0) is None  # too few to choose on
    with pytest.raises(MedAIError, match="scaffold, random"):
        selection.inner_folds(X, y, "binary", "cluster", seed=0)


def test_ensemble_selection_weights_what_helps_out_of_fold():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.column_stack([1 - (0.6 * y + 0.4 * rng.random(400)), 0.6 * y + 0.4 * rng.random(400)])
    noise = rng.random((400, 2))
    _, score = selection.scorer("binary")
    assert selection.ensemble_selection([noise, good], y, score).tolist() == [0.0, 1.0]
    half = [np.column_stack([1 - p, p]) for p in (y * (rng.random(400) < 0.5) + 0.5 * rng.random(400),
                                                  y * (rng.random(400) < 0.5) + 0.5 * rng.random(400))]
    weights = selection.ensemble_selection(half, y, score)  # two partial views: the average beats either
    assert (weights > 0).all() and weights.sum() == pytest.approx(1.0)
    with pytest.raises(MedAIError, match="at least one candidate"):
        selection.ensemble_selection([], y, score)


def _two_views(patch, default=(("rf", ("morgan",)), ("rf", ("rdkit2d",)))):
    patch.setattr(learners, "CANDIDATES", {"classification": (("rf", ("morgan",)), ("rf", ("rdkit2d",))),
                                           "regression": ()})
    patch.setattr(learners, "DEFAULTS", {**learners.DEFAULTS, "classification": default})


def _signal(X, learner, signal):
    """A label that is a function of one view of the molecules only, and the candidate that reads that view."""
    F = learner.featurizer.transform(X)
    if signal == "descriptor":
        logp = F[:, 256 + learner.featurizer.descriptor_names().index("MolLogP")]
        return (logp > np.median(logp)).astype(int), "random forest on rdkit2d"
    bits = F[:, :256] > 0
    j = int(np.argmin(np.abs(bits.mean(axis=0) - 0.4)))  # a hashed bit set in about 40% of molecules
    return bits[:, j].astype(int), "random forest on morgan"


@pytest.mark.parametrize("signal", ["descriptor", "morgan bit"])
def test_auto_chooses_the_feature_set_that_carries_the_signal_on_inner_validation(signal):
    """The label is a function of one view of the molecules only: the selection, which sees only the training
    molecules, must give that view the larger weight - and, as it beats the default (the mean of both views) on
    every inner fold, replace the default with it."""
    frame = sample(BBBP, 240)
    X = frame["smiles"].to_numpy(dtype=object)
    learner = MoleculeForest("auto", "binary", "morgan,rdkit2d", n_bits=256, n_estimators=40, n_jobs=1)
    y, wins = _signal(X, learner, signal)
    with pytest.MonkeyPatch.context() as patch:
        _two_views(patch)
        learner.fit(X, y)
    chosen = learner.selection_
    assert chosen["chosen"] and chosen["cv"] == "5-fold scaffold-grouped CV" and chosen["metric"] == "roc_auc"
    loser = ({"random forest on morgan", "random forest on rdkit2d"} - {wins}).pop()
    assert chosen["scores"][wins] > chosen["scores"][loser]
    assert chosen["weights"][wins] > max(0.5, chosen["weights"].get(loser, 0.0))  # chosen, not merely averaged
    assert chosen["kept"] == "selection" and len(chosen["crossfit_gain"]) == 5 and min(chosen["crossfit_gain"]) > 0
    assert learner.weights_ == pytest.approx(list(chosen["weights"].values()), abs=1e-3)
    assert learner.describe().endswith("(chosen by 5-fold scaffold-grouped CV on the training molecules)")


def test_auto_keeps_the_default_unless_the_selection_beats_it_on_every_fold():
    """The default is the view that carries the signal: the selection (which picks the same view, or adds the
    noise view) cannot beat it on every inner fold, so ``auto`` keeps the default with equal weights."""
    frame = sample(BBBP, 240)
    X = frame["smiles"].to_numpy(dtype=object)
    learner = MoleculeForest("auto", "binary", "morgan,rdkit2d", n_bits=256, n_estimators=40, n_jobs=1)
    y, _ = _signal(X, learner, "descriptor")
    with pytest.MonkeyPatch.context() as patch:
        _two_views(patch, default=(("rf", ("rdkit2d",)),))
        learner.fit(X, y)
    chosen = learner.selection_
    assert chosen["kept"] == "default" and chosen["default"] == ["random forest on rdkit2d"]
    assert min(chosen["crossfit_gain"]) <= 0 and len(chosen["default_fold_scores"]) == 5
    assert learner.members_ == [("rf", ("rdkit2d",))] and learner.weights_ == [1.0]
    assert [m.n_features_in_ for m in learner.estimators_[0]] == [len(learner.featurizer.descriptor_names())]
    assert "(the default: the selection by 5-fold scaffold-grouped CV" in learner.describe()


def test_crossfit_gain_scores_the_selection_on_folds_it_did_not_choose_on():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 100)
    folds = [(np.setdiff1d(np.arange(200), va), va) for va in np.array_split(rng.permutation(200), 5)]
    _, score = selection.scorer("binary")
    noise = np.column_stack([np.full(200, 0.5), rng.random(200)])
    good = np.column_stack([np.full(200, 0.5), y + rng.normal(0, 0.5, 200)])
    assert np.all(selection.crossfit_gain([noise, good], noise, y, score, folds) > 0.2)  # signal beats noise
    assert np.all(selection.crossfit_gain([noise, good], good, y, score, folds) <= 1e-9)  # nothing beats it
    scores = selection.fold_scores(good, y, score, folds)
    assert scores.shape == (5,) and np.all(scores > 0.7)


def test_chosen_ensemble_round_trip_predicts_and_explains_the_same():
    from medai.modalities.molecules.explain import forest_atom_weights

    frame = sample(BBBP, 200)
    X, y = frame["smiles"].to_numpy(dtype=object), frame["p_np"].to_numpy(int)
    learner = MoleculeForest("auto", "binary", "morgan,rdkit2d,maccs", n_bits=256, n_estimators=30, n_jobs=1,
                             seed=3).fit(X[:160], y[:160])
    chosen = learner.selection_
    assert chosen["chosen"] and set(chosen["scores"]) == {
        "random forest on morgan", "random forest on morgan,rdkit2d", "random forest on rdkit2d,maccs",
        "extra trees on morgan,rdkit2d,maccs", "LightGBM on morgan,rdkit2d,maccs", "MinMax-kernel SVM on Morgan counts"}
    assert sum(chosen["weights"].values()) == pytest.approx(1.0, abs=1e-3)
    F = learner.featurizer.transform(X[160:])
    members = zip(learner.estimators_[0], learner.columns_, learner.weights_, strict=True)
    expected = sum(w * m.predict_proba(columns(F, cols)) for m, cols, w in members)
    assert np.allclose(learner.predict_proba(X[160:]), expected)
    assert np.allclose(learner.predict_proba(X[160:]).sum(axis=1), 1.0)

    modality = get_modality("molecules")
    loaded = _load(modality, modality.save_learner(learner))
    assert np.array_equal(loaded.predict_proba(X[160:]), learner.predict_proba(X[160:]))
    assert loaded.selection_ == chosen and loaded.describe() == learner.describe()
    assert np.array_equal(forest_atom_weights(loaded, X[160], 1), forest_atom_weights(learner, X[160], 1))
    described = modality.describe_learner(loaded, "auto")
    assert described["training"]["selection"] == chosen
    assert ("chosen by" if chosen["kept"] == "selection" else "(the default:") in described["name"]


def test_auto_regression_chooses_with_random_folds_when_the_split_is_random():
    frame = sample(ESOL, 150)
    X, y = frame["smiles"].to_numpy(dtype=object), frame["logp"].to_numpy(float)
    learner = MoleculeForest("auto", "regression", "morgan,rdkit2d", n_bits=256, n_estimators=30, n_jobs=1,
                             selection="random").fit(X[:120], y[:120])
    chosen = learner.selection_
    assert chosen["cv"] == "5-fold random CV" and chosen["metric"] == "neg_rmse"
    assert "SVR on RDKit 2D descriptors" in chosen["scores"]
    assert all(s < 0 for s in chosen["scores"].values()) and chosen["ensemble_score"] >= max(chosen["scores"].values())
    assert np.sqrt(np.mean((learner.predict(X[120:]) - y[120:]) ** 2)) < np.std(y[120:])
    with pytest.raises(MedAIError, match="scaffold, random"):
        MoleculeForest("auto", "regression", "morgan", n_bits=256, selection="kmeans").fit(X[:120], y[:120])
