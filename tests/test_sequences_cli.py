"""The sequences modality end to end through the CLI and the service, on UCI splice-junction windows: a table
and a FASTA with header labels through `medai train --data`, predict on FASTA, evaluate, explain (the saliency
of donor sites points at the GT after the boundary), the service's {"records": [{"sequence": ...}]}, and bad
input answered with one line."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_data
from test_cli import run

pytest.importorskip("Bio")

SPLICE = "sequences/uci_splice_junction/splice.csv"
DONOR = "CCAGCTGCATCACAGGAGGCCAGCGAGCAGGTAAGAGCCCCGAGGAGGCACAGGCTGGGC"  # an EI window: boundary after 30


def splice(n: int, seed: int = 0) -> pd.DataFrame:
    frame = pd.read_csv(require_data(SPLICE), skipinitialspace=True)
    frame = frame.rename(columns=lambda c: c.strip()).apply(lambda c: c.str.strip())
    return frame.sample(n, random_state=seed).reset_index(drop=True)


def _bad(capsys, argv, needle, out=None):
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith("error:") and needle in err, err
    assert out is None or not out.exists()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    frame = splice(900)
    frame.to_csv(root / "splice.csv", index=False)
    new = splice(40, seed=1)
    (root / "new.fasta").write_text("".join(f">{d} class={c}\n{s.lower()}\n"
                                            for c, d, s in new.itertuples(index=False)))
    return root


@pytest.fixture(scope="module")
def model(files, tmp_path_factory):
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("model") / "m"
    result = subprocess.run([sys.executable, "-m", "medai.cli", "train", "--data", str(files / "splice.csv"),
                             "--target", "Class", "--k", "1-3", "--seed", "1", "--cv", "3x1", "--out", str(out),
                             "--no-register", "--json"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout), result.stderr


def test_a_table_of_sequences_trains_a_calibrated_kmer_svm(model):
    out, metrics, err = model
    assert "alphabet detected: DNA" in err and "sequences from column 'Sequence'" in err
    assert metrics["kind"] == "multiclass" and metrics["test"]["accuracy"]["value"] > 0.9
    assert set(metrics["test"]["accuracy"]) == {"value", "ci_low", "ci_high"}
    assert metrics["cv"]["accuracy"]["mean"] > 0.9
    k = metrics["training"]["k"]
    assert metrics["learner"] == f"linear SVM (Platt-calibrated) on positional k-mers (k = 1..{k})"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"]["accuracy"] == metrics["test"]["accuracy"] and "cv" in saved
    assert {"motif_EI.png", "saliency_profile.png"} <= {p.name for p in (out / "plots").iterdir()}
    report = (out / "report.html").read_text()
    assert "Top k-mers of the model" in report and "Motifs from the most salient windows" in report
    # donors: the mean saliency of EI windows peaks at the G and T right after the boundary (positions 31-32)
    assert {31, 32} & set(metrics["motifs"]["EI"]["top_positions"][:2])


def test_predict_and_evaluate_on_a_fasta(model, files, tmp_path, capsys):
    out, _, _ = model
    code, _, err = run(["predict", out, files / "new.fasta", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 40 and {"id", "label", "prediction_set"} <= set(table.columns)
    truth = splice(40, seed=1)["Class"]
    assert (table["label"].to_numpy() == truth.to_numpy()).mean() > 0.85
    code, stdout, err = run(["evaluate", out, "--data", files / "new.fasta", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["n"] == 40


def test_explain_points_at_the_donor_gt(model, tmp_path, capsys):
    out, _, _ = model
    code, stdout, err = run(["explain", out, "--sequence", DONOR, "--json", "-o", tmp_path / "s.png"], capsys)
    assert code == 0, err
    row = json.loads(stdout)[0]
    assert row["label"] == "EI" and len(row["saliency"]) == 60
    top = [int(c["feature"].split()[1]) for c in row["contributions"]]
    assert {31, 32} & set(top[:3]), top
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert row["top_kmers"] and ":" in row["top_kmers"][0]["kmer"]
    _bad(capsys, ["explain", out, "--sequence", "ACGTQQ"], "character 'Q' at position 5")


def test_saliency_of_donor_windows_includes_the_gt_after_the_boundary(model):
    from medai.road import load_model

    out, _, _ = model
    loaded = load_model(out)
    donors = splice(400, seed=7).query("Class == 'EI'")["Sequence"].head(12).tolist()
    explanations = loaded.modality.explain(loaded, np.array(donors, dtype=object), top_k=5)
    hits = [bool({30, 31} & {int(np.argsort(-np.array(e["saliency"]))[j]) for j in range(5)}) for e in explanations]
    assert np.mean(hits) >= 0.75, hits


def test_the_service_predicts_sequence_records(model):
    from fastapi.testclient import TestClient

    from medai.client import Client, ServiceError
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    out, _, _ = model
    Registry().register(out, name="splice")
    app = create_app(Settings(job_poll_s=0.05, rate_limit=100_000))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        client = Client(key=key, http=http)
        answer = client.predict("splice", [{"sequence": DONOR}, {"sequence": DONOR.lower()}], explain=True)
        first, second = answer["predictions"]
        assert first["label"] == "EI" and second["label"] == "EI" and "prediction_set" in first
        assert base64.b64decode(first["explanation_png_base64"])[:4] == b"\x89PNG"
        with pytest.raises(ServiceError) as error:
            client.predict("splice", [{"sequence": DONOR}, {"sequence": "ACGT!!"}])
        assert error.value.status_code in (400, 422) and "record 1" in str(error.value.detail)


def test_a_fasta_with_header_labels_and_leave_one_out_sized_data(files, tmp_path, capsys):
    small = splice(60, seed=3)
    small["y"] = np.where(small["Class"] == "N", "no", "site")
    (tmp_path / "small.fa").write_text("".join(f">r{i} label={y}\n{s}\n" for i, (s, y) in
                                               enumerate(zip(small["Sequence"], small["y"], strict=True))))
    code, stdout, err = run(["train", "--data", tmp_path / "small.fa", "--positive-label", "site", "--k", "2",
                             "--learner", "logistic", "--cv", "loo", "--out", tmp_path / "m", "--json",
                             "--no-register"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "binary" and metrics["cv"]["accuracy"]["mean"] > 0.6
    assert metrics["cv"]["auroc"]["n_folds"] == 60 and metrics["cv"]["auroc"]["pooled"] is True
    assert "leave-one-out cross-validation on all records" in metrics["split"]["protocol"]
    assert json.loads((tmp_path / "m/metrics.json").read_text())["cv"]["accuracy"] == metrics["cv"]["accuracy"]
    code, stdout, err = run(["train", "--data", tmp_path / "small.fa", "--positive-label", "site", "--k", "2",
                             "--learner", "logistic", "--cv", "5x2", "--out", tmp_path / "m2", "--json",
                             "--no-register"], capsys)
    assert code == 0 and json.loads(stdout)["cv"]["accuracy"]["n_folds"] == 10, err


def test_bad_input_through_the_cli(files, tmp_path, capsys):
    (tmp_path / "empty.fasta").write_text("")
    _bad(capsys, ["train", "--data", tmp_path / "empty.fasta", "--out", tmp_path / "a"], "holds no FASTA records",
         tmp_path / "a")
    _bad(capsys, ["train", "--data", files / "splice.csv", "--target", "Class", "--learner", "rf", "--out",
                  tmp_path / "b"], "unknown learner 'rf' for sequences", tmp_path / "b")
    _bad(capsys, ["train", "--data", files / "splice.csv", "--target", "Class", "--features", "gapped", "--out",
                  tmp_path / "c"], "--features must be spectrum or positional", tmp_path / "c")


def test_the_cnn_trains_with_reverse_complements_and_explains_by_gradients(files, tmp_path, capsys):
    pytest.importorskip("torch")
    code, stdout, err = run(["train", "--data", files / "splice.csv", "--target", "Class", "--learner", "cnn",
                             "--epochs", "3", "--reverse-complement", "--cv", "none", "--out", tmp_path / "cnn",
                             "--json", "--no-register"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["learner"] == "1-D CNN on one-hot DNA (length 60, both strands)"
    assert metrics["test"]["accuracy"]["value"] > 0.5 and 1 <= metrics["training"]["best_epoch"] <= 3
    assert {"cnn.safetensors", "cnn.json"} <= {p.name for p in (tmp_path / "cnn").iterdir()}
    code, stdout, err = run(["explain", tmp_path / "cnn", "--sequence", DONOR, "--json", "-o", tmp_path / "g.png"],
                            capsys)
    assert code == 0, err
    row = json.loads(stdout)[0]
    assert row["method"] == "gradient x input" and len(row["saliency"]) == 60 and (tmp_path / "g.png").exists()
    from medai.road import load_model

    loaded = load_model(tmp_path / "cnn")
    a = loaded.learner.predict_proba([DONOR])
    assert np.allclose(a.sum(axis=1), 1) and a.shape == (1, 3)
    _bad(capsys, ["train", "--data", files / "splice.csv", "--target", "Class", "--learner", "cnn",
                  "--reverse-complement", "--alphabet", "protein", "--out", tmp_path / "p"],
         "--reverse-complement applies to DNA sequences", tmp_path / "p")


def test_the_svm_and_cnn_ensemble_round_trip(tmp_path, capsys):
    pytest.importorskip("torch")
    splice(300, seed=5).to_csv(tmp_path / "s.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "s.csv", "--target", "Class", "--learner", "ensemble",
                             "--epochs", "2", "--k", "2", "--cv", "none", "--conformal", "none", "--out",
                             tmp_path / "e", "--json", "--no-register"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["learner"].startswith("mean of linear SVM (Platt-calibrated)") and "1-D CNN" in metrics["learner"]
    code, stdout, err = run(["predict", tmp_path / "e", "--sequence", DONOR, "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)[0]["label"] in ("EI", "IE", "N")


def test_the_weighted_degree_svm_round_trip_through_the_cli_and_the_service(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from medai.client import Client
    from medai.registry import Registry
    from medai.road import load_model
    from medai.serving.app import Settings, create_app

    splice(400, seed=4).to_csv(tmp_path / "s.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "s.csv", "--target", "Class", "--learner", "wd-svm",
                             "--wd-degree", "8", "--wd-shift", "0,1", "--cv", "none", "--out", tmp_path / "wd",
                             "--json", "--no-register"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["learner"].startswith("SVM on the weighted-degree kernel (degree 8")
    assert metrics["training"]["degree"] == 8 and len(metrics["training"]["inner_cv"]) == 2 * 4  # 2 shifts x 4 C
    assert metrics["test"]["accuracy"]["value"] > 0.85
    code, stdout, err = run(["predict", tmp_path / "wd", "--sequence", DONOR, "--sequence", DONOR.lower(), "--json"],
                            capsys)
    assert code == 0, err
    assert [row["label"] for row in json.loads(stdout)] == ["EI", "EI"]
    loaded = load_model(tmp_path / "wd")
    assert type(loaded.learner).__name__ == "WDKernelSVM"
    assert np.allclose(loaded.learner.predict_proba([DONOR]).sum(axis=1), 1)
    code, stdout, err = run(["explain", tmp_path / "wd", "--sequence", DONOR, "--json", "-o", tmp_path / "w.png"],
                            capsys)
    assert code == 0, err
    row = json.loads(stdout)[0]
    assert row["method"] == "in-silico mutagenesis" and (tmp_path / "w.png").exists()
    assert {31, 32} & {int(c["feature"].split()[1]) for c in row["contributions"][:3]}  # the GT after the boundary
    Registry().register(tmp_path / "wd", name="splice-wd")
    app = create_app(Settings(job_poll_s=0.05, rate_limit=100_000))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        answer = Client(key=key, http=http).predict("splice-wd", [{"sequence": DONOR}])
        assert answer["predictions"][0]["label"] == "EI"
    _bad(capsys, ["predict", tmp_path / "wd", "--sequence", "ACGTACGT"], "aligned sequences of one length (60)")
    frame = splice(60, seed=2)
    frame.loc[0, "Sequence"] = frame.loc[0, "Sequence"][:50]
    frame.to_csv(tmp_path / "ragged.csv", index=False)
    code, _, err = run(["train", "--data", tmp_path / "ragged.csv", "--target", "Class", "--learner", "wd-svm",
                        "--out", tmp_path / "r"], capsys)  # refused once the lengths are read, after the notes
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err and not (tmp_path / "r").exists(), err
    assert last.startswith("error: the weighted-degree kernel (learner wd-svm) compares aligned sequences of one "
                           "length; these vary (50-60)"), err
    _bad(capsys, ["train", "--data", tmp_path / "s.csv", "--target", "Class", "--learner", "wd-svm", "--wd-shift",
                  "-2", "--out", tmp_path / "x"], "--wd-shift must be 0 or more", tmp_path / "x")
