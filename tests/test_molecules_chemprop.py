"""chemprop's D-MPNN behind the estimator interface: trained through the road, stored as safetensors + JSON (no
pickle), loaded back with identical predictions, explained by gradient x input per atom; RDKit descriptors
scaled by their empirical CDF on the training molecules (or log-compressed), kept with the weights."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_data
from test_cli import run

pytest.importorskip("chemprop")


def test_chemprop_trains_round_trips_and_draws_atom_maps(tmp_path, capsys):
    frame = pd.read_csv(require_data("molecules/moleculenet_chemprop/bbbp.csv")).sample(160, random_state=0)
    frame.to_csv(tmp_path / "b.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "b.csv", "--target", "p_np", "--learner", "chemprop",
                             "--epochs", "3", "--mpnn-descriptors", "--split", "random", "--out", tmp_path / "m",
                             "--json", "--no-register"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["learner"] == "chemprop D-MPNN + RDKit 2D descriptors" and 0 <= metrics["training"]["best_epoch"] < 3
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"weights.safetensors", "chemprop.json"} <= files and "model.skops" not in files

    from medai.road import load_model

    model = load_model(tmp_path / "m")
    smiles = np.array(["CCO", "c1ccccc1N", "CC(=O)Oc1ccccc1C(=O)O"], dtype=object)
    trained = metrics["test"]["auroc"]["value"]
    assert trained is None or 0 <= trained <= 1
    again = load_model(tmp_path / "m")
    assert np.allclose(model.scores(smiles), again.scores(smiles))
    weights = model.learner.atom_weights("c1ccccc1N", 1)
    assert weights.shape == (7,) and np.isfinite(weights).all()
    code, _, err = run(["explain", tmp_path / "m", "--smiles", "c1ccccc1N", "-o", tmp_path / "atoms.png"], capsys)
    assert code == 0 and (tmp_path / "atoms.png").read_bytes()[:4] == b"\x89PNG", err
    code, stdout, err = run(["predict", tmp_path / "m", "--smiles", "CCO", "--json"], capsys)
    assert code == 0 and {"probability", "in_domain"} <= set(json.loads(stdout)[0]), err


def test_empirical_cdf_puts_every_descriptor_in_zero_one():
    from medai.modalities.molecules.mpnn import cdf, fit_quantiles

    D = np.array([[0.0, 10.0], [1.0, 10.0], [2.0, 10.0], [3.0, 20.0]])
    q = fit_quantiles(D)
    assert np.allclose(cdf(D, q)[:, 0], [0, 1 / 3, 2 / 3, 1])
    assert 0.2 < cdf(D, q)[0, 1] < 0.45 and cdf(D, q)[3, 1] == 1.0  # a tie takes the middle of its range
    assert np.array_equal(cdf(np.array([[-5.0, -1e30], [100.0, 1e30]]), q), [[0, 0], [1, 1]])  # beyond: clipped


@pytest.mark.parametrize("scaling", ["cdf", "log"])
def test_descriptor_scaling_is_fitted_on_training_molecules_and_round_trips(scaling):
    from medai.modalities.molecules.mpnn import ChempropLearner

    frame = pd.read_csv(require_data("molecules/moleculenet_chemprop/bbbp.csv")).sample(60, random_state=1)
    X, y = frame["smiles"].to_numpy(dtype=object), frame["p_np"].to_numpy(int)
    learner = ChempropLearner(epochs=1, descriptors=True, descriptor_scaling=scaling, threads=1).fit(X[:50], y[:50])
    D = learner._descriptors(X)
    assert np.isfinite(D).all()
    if scaling == "cdf":
        assert D.min() >= 0 and D.max() <= 1 and learner.descriptor_quantiles_.shape == (101, D.shape[1])
    else:
        assert D.max() > 1 and learner.descriptor_quantiles_.size == 0
    files = learner.to_files()
    loaded = ChempropLearner.from_files(*files.values())
    assert loaded.descriptor_scaling == scaling
    assert np.allclose(loaded.predict_proba(X[50:]), learner.predict_proba(X[50:]))
    if scaling == "log":  # a model saved before the option (no descriptor_scaling in its config) is read as log
        config = json.loads(files["chemprop.json"])
        del config["params"]["descriptor_scaling"]
        old = ChempropLearner.from_files(files["weights.safetensors"], json.dumps(config).encode())
        assert old.descriptor_scaling == "log" and np.allclose(old.predict_proba(X[50:]), learner.predict_proba(X[50:]))


def test_unknown_descriptor_scaling_is_refused():
    from medai.errors import MedAIError
    from medai.modalities.molecules.mpnn import ChempropLearner

    with pytest.raises(MedAIError, match="descriptor_scaling must be one of cdf, log, got 'minmax'"):
        ChempropLearner(epochs=1, descriptors=True, descriptor_scaling="minmax").fit(["CCO", "CCN"], [0, 1])
