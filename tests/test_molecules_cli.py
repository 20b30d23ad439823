"""The molecules modality end to end through the CLI and the service: a user's CSV with a classification target
and with a regression target (train, predict, evaluate, explain, serve), multi-task labels with gaps, SDF, and
bad input answered with one line and nothing written."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_data
from test_cli import run

pytest.importorskip("rdkit")

BBBP = "molecules/moleculenet_chemprop/bbbp.csv"
ESOL = "molecules/moleculenet_chemprop/delaney.csv"
TOX21 = "molecules/moleculenet_chemprop/tox21.csv"
FAR = "FC(F)(F)C(F)(F)C(F)(F)C(F)(F)F"  # perfluorobutane: like nothing in the training sets


def subset(relative: str, n: int, seed: int = 0) -> pd.DataFrame:
    frame = pd.read_csv(require_data(relative))
    return frame.sample(n, random_state=seed).reset_index(drop=True)


def _bad(capsys, argv, needle, out=None):
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith("error:") and needle in err, err
    assert out is None or not out.exists()


@pytest.fixture(scope="module")
def assay(tmp_path_factory):
    """240 BBBP molecules as a user's assay file (ClinTox-like name, an id column), with 3 broken SMILES."""
    root = tmp_path_factory.mktemp("mol")
    frame = subset(BBBP, 240).rename(columns={"p_np": "active"})
    frame.insert(0, "compound_id", [f"C{i:04d}" for i in range(len(frame))])
    frame.loc[[5, 17, 30], "smiles"] = ["C1CC", "CC(C)(C)(C)C", "not a molecule"]
    frame.to_csv(root / "assay.csv", index=False)
    frame.drop(columns="active").head(6).to_csv(root / "new.csv", index=False)
    return root


@pytest.fixture(scope="module")
def classifier(assay, tmp_path_factory):
    """One random forest trained through the CLI (in a subprocess: a module-scoped fixture has no capsys)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("model") / "m"
    result = subprocess.run([sys.executable, "-m", "medai.cli", "train", "--data", str(assay / "assay.csv"),
                             "--target", "active", "--learner", "rf", "--n-estimators", "100", "--split", "scaffold",
                             "--seed", "1",
                             "--out", str(out), "--no-register", "--json"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout), result.stderr


def test_a_users_csv_trains_with_invalid_rows_reported_and_left_out(classifier):
    out, metrics, err = classifier
    assert "3 invalid SMILES left out (row 6 'C1CC': SMILES Parse Error: unclosed ring; row 18" in err
    assert "row 31 'not a molecule'" in err
    assert metrics["kind"] == "binary" and set(metrics["test"]["auroc"]) == {"value", "ci_low", "ci_high"}
    assert metrics["test"]["auroc"]["value"] > 0.6
    assert metrics["split"]["protocol"].startswith("deterministic Bemis-Murcko scaffold split 80/10/10")
    assert set(metrics["split"]["duplicates"]) == {"val_in_train", "test_in_train"}
    domain = metrics["applicability_domain"]
    assert 0 <= domain["fraction_in_domain"] <= 1 and domain["nearest_train_similarity"]["q50"] > 0
    report = (out / "report.html").read_text()
    assert "Applicability domain" in report and "scaffold" in report and "invalid SMILES" in report
    model = json.loads((out / "model.json").read_text())
    assert model["modality"] == "molecules" and model["input_schema"]["fields"] == [{"name": "smiles",
                                                                                       "kind": "text"}]


def test_the_artifact_keeps_fingerprints_not_the_training_smiles(classifier, assay):
    out, _, _ = classifier
    training = pd.read_csv(assay / "assay.csv")["smiles"].astype(str)
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    long_ones = [s for s in training if len(s) > 25][:20]
    assert long_ones and not any(s.encode() in blob for s in long_ones)
    from medai.road import load_model

    model = load_model(out)
    assert model.learner.domain_.dtype == np.uint8 and model.learner.domain_.shape[1] == 256


def test_predict_adds_the_applicability_domain(classifier, assay, tmp_path, capsys):
    out, _, _ = classifier
    code, _, err = run(["predict", out, assay / "new.csv", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns) == ["compound_id", "probability", "label", "prediction_set", "uncertain", "in_domain",
                                   "nearest_train_similarity"]
    assert table["nearest_train_similarity"].between(0, 1).all()
    code, stdout, err = run(["predict", out, "--smiles", FAR, "--smiles", "CCO", "--json"], capsys)
    assert code == 0, err
    items = json.loads(stdout)
    assert items[0]["in_domain"] is False and items[0]["nearest_train_similarity"] < 0.35


def test_evaluate_on_labelled_molecules(classifier, assay, capsys):
    out, _, _ = classifier
    code, stdout, err = run(["evaluate", out, "--data", assay / "assay.csv", "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    assert result["n"] == 237 and result["test"]["auroc"]["value"] > 0.8


def test_explain_draws_the_atom_map(classifier, tmp_path, capsys):
    out, _, _ = classifier
    code, _, err = run(["explain", out, "--smiles", "CCO", "-o", tmp_path / "atoms.png"], capsys)
    assert code == 0, err
    assert (tmp_path / "atoms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, stdout, err = run(["explain", out, "--smiles", "c1ccccc1CCN", "--json", "-o", tmp_path / "b.png"], capsys)
    row = json.loads(stdout)[0]
    assert code == 0 and len(row["atom_weights"]) == 9 and row["contributions"][0]["feature"].startswith("atom ")
    _bad(capsys, ["explain", out, "--smiles", "C1CC"], "unclosed ring")
    _bad(capsys, ["explain", out], "missing INPUT")


def test_the_service_predicts_smiles_records_with_domain_and_atom_map(classifier):
    from fastapi.testclient import TestClient

    from medai.client import Client, ServiceError
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    out, _, _ = classifier
    Registry().register(out, name="bbb")
    app = create_app(Settings(job_poll_s=0.05, rate_limit=100_000))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        client = Client(key=key, http=http)
        answer = client.predict("bbb", [{"smiles": "CCO"}, {"smiles": FAR}], explain=True)
        first, second = answer["predictions"]
        assert {"probability", "label", "prediction_set", "in_domain", "nearest_train_similarity"} <= set(first)
        assert second["in_domain"] is False
        assert base64.b64decode(first["explanation_png_base64"])[:4] == b"\x89PNG"
        with pytest.raises(ServiceError) as error:
            client.predict("bbb", [{"smiles": "CCO"}, {"smiles": "C1CC"}])
        assert error.value.status_code in (400, 422) and "record 1" in str(error.value.detail)
        assert "unclosed ring" in str(error.value.detail)


def test_regression_end_to_end_with_intervals(tmp_path, capsys):
    frame = subset(ESOL, 200).rename(columns={"logp": "log_solubility"})
    frame.to_csv(tmp_path / "sol.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "sol.csv", "--target", "log_solubility", "--learner",
                             "lightgbm", "--n-estimators", "100", "--split", "random", "--out", tmp_path / "m",
                             "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "regression" and metrics["test"]["rmse"]["value"] < 1.6
    assert json.loads((tmp_path / "m/metrics.json").read_text())["test"]["rmse"] == metrics["test"]["rmse"]
    code, _, err = run(["predict", tmp_path / "m", tmp_path / "sol.csv", "-o", tmp_path / "p.csv"], capsys)
    table = pd.read_csv(tmp_path / "p.csv")
    assert code == 0 and {"prediction", "interval_low", "interval_high", "in_domain"} <= set(table.columns)
    assert (table["interval_low"] <= table["prediction"]).all()
    code, _, err = run(["explain", tmp_path / "m", "--smiles", "CCCCO", "-o", tmp_path / "a.png"], capsys)
    assert code == 0 and (tmp_path / "a.png").exists(), err


def test_tox21_style_multitask_labels_with_gaps(tmp_path, capsys):
    frame = subset(TOX21, 400)[["smiles", "NR-AhR", "SR-ARE", "SR-MMP"]]
    assert frame[["NR-AhR", "SR-ARE", "SR-MMP"]].isna().any().any()
    frame.to_csv(tmp_path / "tox.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "tox.csv", "--target", "NR-AhR,SR-ARE,SR-MMP",
                             "--learner", "lightgbm", "--n-estimators", "60", "--features", "morgan", "--split",
                             "random", "--out", tmp_path / "m", "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "multilabel" and "auroc[SR-MMP]" in metrics["test"]


def test_a_clintox_shaped_csv_goes_to_the_molecules_modality_by_itself(tmp_path, capsys):
    from medai.modalities import modality_for_data
    from medai.road import TrainOptions

    frame = subset(BBBP, 60)
    frame = pd.DataFrame({"smiles": frame["smiles"], "FDA_APPROVED": 1 - frame["p_np"], "CT_TOX": frame["p_np"]})
    frame.to_csv(tmp_path / "clintox.csv", index=False)
    assert modality_for_data(tmp_path / "clintox.csv", TrainOptions()).name == "molecules"
    code, _, err = run(["train", "--data", tmp_path / "clintox.csv", "--target", "CT_TOX", "--learner", "logistic",
                        "--modality", "tabular", "--out", tmp_path / "t", "--cv", "none"], capsys)
    assert "it holds SMILES strings: the molecules modality reads them (--modality molecules)" in err


def test_sdf_with_and_without_the_named_property(tmp_path, capsys):
    from rdkit import Chem

    frame = subset(BBBP, 120, seed=3)
    writer = Chem.SDWriter(str(tmp_path / "set.sdf"))
    for smiles, label in zip(frame["smiles"], frame["p_np"], strict=True):
        mol = Chem.MolFromSmiles(smiles)
        if mol is not None:
            mol.SetProp("permeable", str(label))
            writer.write(mol)
    writer.close()
    _bad(capsys, ["train", "--data", tmp_path / "set.sdf", "--target", "pIC50", "--out", tmp_path / "x"],
         "has no property 'pIC50'; property names: ['permeable']", tmp_path / "x")
    code, stdout, err = run(["train", "--data", tmp_path / "set.sdf", "--target", "permeable", "--learner", "rf",
                             "--n-estimators", "50", "--split", "random", "--out", tmp_path / "m", "--json",
                             "--conformal", "none"], capsys)
    assert code == 0 and json.loads(stdout)["kind"] == "binary", err


def test_bad_molecule_files_get_one_clear_line_and_nothing_is_written(tmp_path, capsys):
    pd.DataFrame({"smiles": ["C1CC", "xyz", "C(C"] * 10, "y": [0, 1] * 15}).to_csv(tmp_path / "none.csv", index=False)
    _bad(capsys, ["train", "--data", tmp_path / "none.csv", "--target", "y", "--modality", "molecules", "--out",
                  tmp_path / "a"], "no SMILES in column 'smiles'", tmp_path / "a")
    pd.DataFrame({"smiles": [None] * 30, "y": [0, 1] * 15}).to_csv(tmp_path / "empty.csv", index=False)
    _bad(capsys, ["train", "--data", tmp_path / "empty.csv", "--target", "y", "--modality", "molecules", "--out",
                  tmp_path / "b"], "SMILES column 'smiles'", tmp_path / "b")
    frame = subset(BBBP, 80).assign(p_np=1)
    frame.to_csv(tmp_path / "one.csv", index=False)
    _bad(capsys, ["train", "--data", tmp_path / "one.csv", "--target", "p_np", "--out", tmp_path / "c"],
         "single value", tmp_path / "c")
    _bad(capsys, ["train", "--data", tmp_path / "one.csv", "--target", "p_np", "--split", "stratified", "--out",
                  tmp_path / "d"], "--split must be one of scaffold, random, balanced-scaffold", tmp_path / "d")
    subset(BBBP, 80).to_csv(tmp_path / "two.csv", index=False)
    _bad(capsys, ["train", "--data", tmp_path / "two.csv", "--target", "p_np", "--learner", "gaussian-process", "--out",
                  tmp_path / "e"], "unknown learner 'gaussian-process'", tmp_path / "e")
