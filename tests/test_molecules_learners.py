"""The molecule learners: the ``auto`` ensemble's members and the columns each reads, its output as the mean of
its members, the weights' round trip through skops, models saved before members had their own columns, and the
extra-trees learner through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_data
from test_cli import run

pytest.importorskip("rdkit")

from medai.modalities import get_modality  # noqa: E402
from medai.modalities.molecules.features import Featurizer  # noqa: E402
from medai.modalities.molecules.learners import MoleculeForest, auto_members, columns  # noqa: E402

ESOL = "molecules/moleculenet_chemprop/delaney.csv"
BBBP = "molecules/moleculenet_chemprop/bbbp.csv"


def sample(relative: str, n: int) -> pd.DataFrame:
    return pd.read_csv(require_data(relative)).sample(n, random_state=0).reset_index(drop=True)


def test_auto_members_depend_on_the_task_and_the_features():
    assert auto_members("binary", ("morgan", "rdkit2d", "maccs")) == ("extratrees", "lightgbm")
    assert auto_members("multilabel", ("morgan",)) == ("extratrees", "lightgbm")
    assert auto_members("regression", ("morgan", "rdkit2d", "maccs")) == ("extratrees", "lightgbm", "svr")
    assert auto_members("regression", ("morgan", "maccs")) == ("extratrees", "lightgbm")  # no descriptors, no SVR


def test_auto_regression_is_the_mean_of_its_members_and_the_svr_reads_only_the_descriptors():
    frame = sample(ESOL, 120)
    X, y = frame["smiles"].to_numpy(dtype=object), frame["logp"].to_numpy(float)
    learner = MoleculeForest("auto", "regression", "morgan,rdkit2d,maccs", n_bits=256, n_estimators=30,
                             n_jobs=1).fit(X[:100], y[:100])
    featurizer = learner.featurizer
    start = featurizer.names().index("MaxAbsEStateIndex")  # the first RDKit descriptor, after 256 Morgan counts
    assert start == 256 and learner.columns_ == [None, None, (256, 256 + len(featurizer.descriptor_names()))]
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


def test_auto_classifier_averages_extra_trees_and_lightgbm_and_old_models_still_predict():
    frame = sample(BBBP, 120)
    X, y = frame["smiles"].to_numpy(dtype=object), frame["p_np"].to_numpy(int)
    learner = MoleculeForest("auto", "binary", "morgan,rdkit2d", n_bits=256, n_estimators=30, n_jobs=1).fit(
        X[:100], y[:100])
    kinds = [type(m).__name__ for m in learner.estimators_[0]]
    assert kinds == ["ExtraTreesClassifier", "LGBMClassifier"]
    F = learner.featurizer.transform(X[100:])
    expected = np.mean([m.predict_proba(F) for m in learner.estimators_[0]], axis=0)
    assert np.allclose(learner.predict_proba(X[100:]), expected)
    del learner.columns_  # a model saved before members had their own columns reads all of them
    assert np.allclose(learner.predict_proba(X[100:]), expected)


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
