"""The MinMax (Tanimoto on counts) kernel and the support-vector classifier on it: the kernel against its
definition, in blocks, bad input; the classifier's shapes, probabilities, determinism, memory bound (sample and
support vectors only), bad input; and the ``svm`` learner on molecules, saved and loaded through skops."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_data

pytest.importorskip("rdkit")

from medai.errors import MedAIError  # noqa: E402
from medai.modalities import get_modality  # noqa: E402
from medai.modalities.molecules import kernels  # noqa: E402
from medai.modalities.molecules.kernels import MinMaxSVC, minmax_kernel  # noqa: E402
from medai.modalities.molecules.learners import MoleculeForest, auto_candidates, auto_default  # noqa: E402

BBBP = "molecules/moleculenet_chemprop/bbbp.csv"


def brute(A, B) -> np.ndarray:
    out = np.ones((len(A), len(B)))
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            union = np.maximum(a, b).sum()
            if union > 0:
                out[i, j] = np.minimum(a, b).sum() / union
    return out


def counts(n: int, d: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.poisson(0.6, (n, d)) * (rng.random((n, d)) < 0.5)).astype(np.float32)


def test_minmax_kernel_is_sum_of_minima_over_sum_of_maxima_in_any_block_size(monkeypatch):
    A, B = counts(23), counts(11, seed=1)
    A[0] = 0
    B[0] = 0  # two empty molecules: similarity 1 with each other, 0 with the others
    B[1, :5] = 9  # counts above the other rows' levels
    expected = brute(A, B)
    assert np.allclose(minmax_kernel(A, B), expected)
    monkeypatch.setattr(kernels, "BLOCK_ROWS", 4)
    assert np.allclose(minmax_kernel(A, B), expected)
    K = minmax_kernel(A, A)
    assert np.allclose(K, K.T) and np.allclose(np.diag(K), 1.0)
    assert minmax_kernel(A[:0], B).shape == (0, 11)
    assert np.all(np.linalg.eigvalsh(K) > -1e-9)  # a valid kernel


@pytest.mark.parametrize("bad, message", [
    (np.array([[1.0, -1.0]]), "non-negative"), (np.array([[1.0, np.nan]]), "finite"),
    (np.ones((2, 3)), "equal width"), (np.ones(2), "2-D")])
def test_minmax_kernel_refuses_bad_input(bad, message):
    with pytest.raises(MedAIError, match=message):
        minmax_kernel(bad, np.ones((2, 2)))


def signal(n: int, seed: int = 0):
    X = counts(n, seed=seed)
    return X, (X[:, 0] + X[:, 1] + X[:, 2] > 1).astype(int)


def test_minmax_svc_fits_predicts_and_is_deterministic():
    from sklearn.metrics import roc_auc_score

    X, y = signal(300)
    model = MinMaxSVC(C=3.0, seed=1).fit(X[:200], y[:200])
    proba = model.predict_proba(X[200:])
    assert proba.shape == (100, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert np.all((proba >= 0) & (proba <= 1))
    assert list(model.classes_) == [0, 1] and model.predict(X[200:]).shape == (100,)
    assert set(model.predict(X[200:])) <= {0, 1}
    assert roc_auc_score(y[200:], proba[:, 1]) > 0.8  # it learns the signal
    # probabilities rank as the decision values do (Platt's map is increasing)
    order = np.argsort(model.decision_function(X[200:]))
    assert np.all(np.diff(proba[order, 1]) >= -1e-12)
    again = MinMaxSVC(C=3.0, seed=1).fit(X[:200], y[:200])
    assert np.array_equal(again.predict_proba(X[200:]), proba)
    # prediction needs only the support vectors' counts, and gives what the full training kernel gives
    assert len(model.support_counts_) == len(model.svc_.support_) < 200
    full = model.svc_.decision_function(minmax_kernel(X[200:], X[:200]))
    assert np.allclose(full, model.decision_function(X[200:]))


def test_minmax_svc_fits_a_sample_keeping_the_rarer_class_above_max_train():
    X, y = signal(300, seed=2)
    y[:] = 0
    y[:20] = 1
    model = MinMaxSVC(max_train=100, seed=0)
    keep = model._sample(y)
    assert len(keep) == 100 and set(np.flatnonzero(y == 1)) <= set(keep)
    assert np.array_equal(keep, MinMaxSVC(max_train=100, seed=0)._sample(y))
    model.fit(X, y)
    assert model.n_train_ == 100 and model.predict_proba(X).shape == (300, 2)


def test_minmax_svc_refuses_bad_input():
    X, y = signal(60)
    with pytest.raises(MedAIError, match="binary"):
        MinMaxSVC().fit(X, np.zeros(60))
    with pytest.raises(MedAIError, match="binary"):
        MinMaxSVC().fit(X, np.arange(60) % 3)
    with pytest.raises(MedAIError, match="labels"):
        MinMaxSVC().fit(X, y[:50])
    with pytest.raises(MedAIError, match="non-negative"):
        MinMaxSVC().fit(-X - 1, y)
    model = MinMaxSVC().fit(X, y)
    with pytest.raises(MedAIError, match="fitted on 40"):
        model.predict_proba(X[:, :10])


def test_svm_learner_on_molecules_reads_morgan_counts_and_round_trips_through_skops():
    frame = pd.read_csv(require_data(BBBP)).sample(150, random_state=0).reset_index(drop=True)
    X, y = frame["smiles"].to_numpy(dtype=object), frame["p_np"].to_numpy(int)
    learner = MoleculeForest("svm", "binary", "morgan,rdkit2d,maccs", n_bits=256).fit(X[:120], y[:120])
    assert learner.columns_ == [((0, 256),)] and learner.describe() == "MinMax-kernel SVM on Morgan counts"
    member = learner.estimators_[0][0]
    assert isinstance(member, MinMaxSVC) and member.n_features_in_ == 256
    proba = learner.predict_proba(X[120:])
    assert proba.shape == (30, 2) and np.allclose(proba.sum(axis=1), 1.0)
    modality = get_modality("molecules")
    files = modality.save_learner(learner)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        loaded = modality.load_learner(Path(tmp), {})
    assert np.array_equal(loaded.predict_proba(X[120:]), proba)
    with pytest.raises(MedAIError, match="add morgan"):
        MoleculeForest("svm", "binary", "rdkit2d,maccs").fit(X[:120], y[:120])
    with pytest.raises(MedAIError, match="binary targets"):
        MoleculeForest("svm", "multiclass", "morgan", n_bits=256).fit(X[:120], np.arange(120) % 3)


def test_svm_is_an_auto_candidate_and_default_member_for_binary_targets_only():
    kinds = ("morgan", "rdkit2d", "maccs")
    assert ("svm", ("morgan",)) in auto_candidates("binary", kinds)
    assert auto_default("binary", kinds)[-1] == ("svm", ("morgan",))  # a member of the default (binary only)
    assert all(name != "svm" for name, _ in auto_candidates("multiclass", kinds))
    assert all(name != "svm" for name, _ in auto_candidates("binary", ("rdkit2d", "maccs")))
    assert all(name != "svm" for name, _ in auto_default("multiclass", kinds))
    assert all(name != "svm" for name, _ in auto_default("regression", kinds))


def test_svm_learner_through_the_cli(tmp_path, capsys):
    from test_cli import run

    frame = pd.read_csv(require_data(BBBP)).sample(150, random_state=1).reset_index(drop=True)
    frame.to_csv(tmp_path / "bbbp.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "bbbp.csv", "--target", "p_np", "--learner",
                             "tanimoto-svm", "--features", "morgan", "--n-bits", "512", "--split", "random",
                             "--out", tmp_path / "m", "--no-register", "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["learner"] == "MinMax-kernel SVM on Morgan counts"
    assert 0.0 <= metrics["test"]["auroc"]["value"] <= 1.0
    code, _, err = run(["predict", tmp_path / "m", "--smiles", "CCO", "--smiles", "c1ccccc1O", "-o",
                        tmp_path / "p.csv"], capsys)
    assert code == 0, err
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert len(predictions) == 2 and {"in_domain", "nearest_train_similarity"} <= set(predictions.columns)
