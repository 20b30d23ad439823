"""chemprop's D-MPNN behind the estimator interface: trained through the road, stored as safetensors + JSON (no
pickle), loaded back with identical predictions, explained by gradient x input per atom."""

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
