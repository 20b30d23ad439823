"""Every kind of target through the command line: multiclass, regression and multilabel train, report, predict,
evaluate and serve; bad targets and options stop with one line and write nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_data
from helpers import risk_frame
from test_cli import run


def test_multiclass_heart_disease_severity(tmp_path, capsys):
    require_data("tabular/heart_disease_uci/processed.cleveland.data")
    code, stdout, err = run(["train", "heart-disease-severity", "--cv", "3x1", "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    assert "decision: most probable class" in stdout and "auroc_macro" in stdout  # printed, no crash
    metrics = json.loads((tmp_path / "m/metrics.json").read_text())
    assert metrics["kind"] == "multiclass" and metrics["target"]["classes"] == ["0", "1", "2", "3", "4"]
    assert {"auroc_macro", "auroc_micro", "accuracy", "f1_macro"} <= set(metrics["test"])
    assert set(metrics["cv"]["auroc_macro"]) >= {"mean", "std", "ci_low", "ci_high"}
    matrix = metrics["confusion_matrix"]["matrix"]
    assert len(matrix) == 5 and all(len(row) == 5 for row in matrix) and sum(map(sum, matrix)) == 61
    assert metrics["conformal"]["mean_set_size"]["value"] >= 1 and len(metrics["conformal"]["per_class"]) == 5
    report = (tmp_path / "m/report.html").read_text()
    assert "Confusion matrix" in report and "roc_per_class" in report
    frame = pd.read_csv(require_data("tabular/heart_disease_uci/processed.cleveland.data"), header=None,
                        names=["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
                               "oldpeak", "slope", "ca", "thal", "num"], na_values="?")
    frame.to_csv(tmp_path / "cleveland.csv", index=False)
    code, _, err = run(["predict", tmp_path / "m", tmp_path / "cleveland.csv", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert {"label", "p_0", "p_4", "prediction_set", "uncertain"} <= set(table.columns)
    assert np.allclose(table[[f"p_{k}" for k in range(5)]].sum(axis=1), 1)
    code, stdout, err = run(["evaluate", tmp_path / "m", "--data", tmp_path / "cleveland.csv", "--json"], capsys)
    assert code == 0 and set(json.loads(stdout)["test"]["auroc_macro"]) == {"value", "ci_low", "ci_high"}, err


def diabetes_csv(path):
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


def test_regression_from_a_csv_trains_reports_predicts_and_serves(tmp_path, capsys):
    data = diabetes_csv(tmp_path / "diabetes.csv")
    code, stdout, err = run(["train", "--data", data, "--target", "target", "--cv", "3x1", "--out", tmp_path / "m",
                             "--json"], capsys)
    assert code == 0, err
    assert "target 'target': regression (numeric with" in err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "regression" and metrics["test"]["r2"]["value"] > 0.3
    assert {"rmse", "mae", "r2", "spearman", "calibration_slope", "calibration_intercept"} == set(metrics["test"])
    assert {"rmse", "mae", "r2", "spearman"} == set(metrics["cv"])
    assert metrics["conformal"]["mean_interval_width"]["value"] > 0
    plots = {p.name for p in (tmp_path / "m/plots").iterdir()}
    assert {"predicted_vs_observed.png", "residuals.png"} <= plots
    code, _, err = run(["predict", tmp_path / "m", data, "-o", tmp_path / "p.csv"], capsys)
    table = pd.read_csv(tmp_path / "p.csv")
    assert code == 0 and list(table.columns)[:3] == ["prediction", "interval_low", "interval_high"], err
    assert (table["interval_low"] < table["prediction"]).all() and (table["prediction"] < table["interval_high"]).all()
    code, stdout, _ = run(["predict", tmp_path / "m", data, "--json"], capsys)
    item = json.loads(stdout)[0]
    assert set(item["interval"]) == {"low", "high"} and item["coverage"] == 0.9 and "value" in item

    from fastapi.testclient import TestClient

    from medai.client import Client
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    Registry().register(tmp_path / "m", name="progression")
    app = create_app(Settings(job_worker=False))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        record = pd.read_csv(data).drop(columns="target").iloc[0].to_dict()
        answer = Client(key=key, http=http).predict("progression", [record], explain=True)
        prediction = answer["predictions"][0]
        assert answer["kind"] == "regression" and prediction["value"] == pytest.approx(table["prediction"][0])
        assert prediction["interval"]["low"] == pytest.approx(table["interval_low"][0])
        assert prediction["contributions"] and "label" not in prediction


def test_multilabel_from_label_sets_and_from_columns(tmp_path, capsys):
    frame = risk_frame(300, seed=4).drop(columns="outcome")
    rng = np.random.default_rng(4)
    dm = (frame["age"] + rng.normal(0, 8, 300)) > 60
    htn = (frame["systolic_bp"].fillna(130) + rng.normal(0, 8, 300)) > 135
    frame["dx"] = [";".join(n for n, on in (("diabetes", a), ("hypertension", b)) if on) or "none"
                   for a, b in zip(dm, htn, strict=True)]
    frame.to_csv(tmp_path / "dx.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "dx.csv", "--target", "dx", "--id-column", "patient_id",
                             "--learner", "logistic", "--out", tmp_path / "m", "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "multilabel" and metrics["target"]["classes"] == ["diabetes", "hypertension", "none"]
    assert {"auroc_macro", "auroc_micro", "auprc_macro", "auroc[diabetes]"} <= set(metrics["test"])
    assert metrics["test"]["auroc[diabetes]"]["value"] > 0.75
    assert (tmp_path / "m/plots/auroc_per_label.png").is_file()
    code, _, err = run(["predict", tmp_path / "m", tmp_path / "dx.csv", "-o", tmp_path / "p.csv"], capsys)
    table = pd.read_csv(tmp_path / "p.csv")
    assert code == 0 and {"labels", "p_diabetes", "prediction_set", "uncertain"} <= set(table.columns), err
    # labels given as 0/1 columns, with unknown values skipped per label
    columns = frame.drop(columns="dx").assign(diabetes=dm.astype(float), hypertension=htn.astype(float))
    columns.loc[:40, "hypertension"] = np.nan
    columns.to_csv(tmp_path / "cols.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "cols.csv", "--target", "diabetes,hypertension",
                             "--id-column", "patient_id", "--learner", "logistic", "--out", tmp_path / "m2",
                             "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["target"]["classes"] == ["diabetes", "hypertension"]


@pytest.mark.parametrize("case,extra,needle", [
    ("one_value", [], "single value"),
    ("text_in_regression", ["--kind", "regression"], "must be numeric but row 3 holds text"),
    ("labels_as_regression", ["--kind", "regression"], "must be numeric but rows"),
    ("empty_label_set", [], "empty label set in row 2"),
    ("coverage_zero", ["--coverage", "0"], "--coverage must lie strictly between 0 and 1"),
    ("coverage_above_one", ["--coverage", "1.5"], "--coverage must lie strictly between 0 and 1"),
    ("bad_conformal", ["--conformal", "fancy"], "--conformal must be one of"),
    ("bad_kind", ["--kind", "ordinal"], "--kind must be one of"),
])
def test_bad_targets_and_options_stop_with_one_line_and_write_nothing(tmp_path, capsys, case, extra, needle):
    frame = risk_frame(60)
    target = {"one_value": ["yes"] * 60,
              "text_in_regression": [1.5, 2.5, "high"] + [float(i) for i in range(57)],
              "labels_as_regression": frame["outcome"].tolist(),
              "empty_label_set": ["a;b", ";"] + ["a", "b"] * 29}.get(case, frame["outcome"].tolist())
    frame.assign(outcome=target).to_csv(tmp_path / "d.csv", index=False)
    code, stdout, err = run(["train", "--data", tmp_path / "d.csv", "--target", "outcome", "--out", tmp_path / "x",
                             *extra], capsys)
    assert code == 2 and err.startswith("error:") and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()
    code, stdout, _ = run(["models", "--json"], capsys)
    assert json.loads(stdout) == []


def test_usage_errors_show_the_usage_line_and_exit_2(capsys):
    for argv, needle in ((["train", "--bogus"], "No such option: --bogus"), (["frob"], "No such command 'frob'")):
        code, _, err = run(argv, capsys)
        assert code == 2 and needle in err and "Usage: medai" in err and "Traceback" not in err, err


def test_five_class_images_from_an_npz_print_their_results(tmp_path, capsys):
    """A multiclass image set trained, wrote its artifact, then crashed while printing a threshold of None."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 100), ("val", 40), ("test", 40)):
        labels = np.arange(n) % 5
        images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 4 * k:4 * k + 6, :] += 150
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.reshape(-1, 1)
    np.savez(tmp_path / "five.npz", **arrays)
    code, stdout, err = run(["train", "--data", tmp_path / "five.npz", "--epochs", "2", "--threads", "1",
                             "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    assert "decision: most probable class" in stdout and "auroc_macro" in stdout and "conformal" in stdout
    metrics = json.loads((tmp_path / "m/metrics.json").read_text())
    assert metrics["kind"] == "multiclass" and len(metrics["confusion_matrix"]["matrix"]) == 5
