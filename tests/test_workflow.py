"""End to end: train on data the code has never seen, reproducibly, with a complete report."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_data
from helpers import risk_frame

from medai.models.loading import load_model
from medai.workflows.tabular import TrainOptions, custom_task, train_tabular, train_task_by_name

FAST = dict(cv=None, n_boot=100, show_progress=False)


@pytest.mark.parametrize("spelling", [("no", "yes"), (1, 2), ("neg", "pos"), (0, 1), ("N", "Y")])
def test_unseen_csv_with_missing_values_strings_and_any_target_spelling(tmp_path, spelling):
    frame = risk_frame(300, seed=7, target_values=spelling)
    frame["ward"] = np.random.default_rng(0).choice(["A", "B", None], len(frame))
    path = tmp_path / "unseen.csv"
    frame.to_csv(path, index=False)
    from medai.data.tabular import read_table

    result = train_tabular(read_table(path), custom_task(path, "outcome"), tmp_path / "m",
                           TrainOptions(learner="logistic", **FAST), id_column="patient_id")
    assert result.metrics["test"]["auroc"]["value"] > 0.7
    model = load_model(tmp_path / "m")
    assert model.schema.positive_label == str(spelling[1])
    assert set(model.predict_frame(frame.head(30))["label"].astype(str)) <= {str(s) for s in spelling}


def test_same_seed_same_metrics_json(tmp_path):
    frame = risk_frame(200)
    task = custom_task(tmp_path / "d.csv", "outcome")
    for run in ("a", "b"):
        train_tabular(frame, task, tmp_path / run, TrainOptions(learner="random-forest", cv="3x2", n_boot=100,
                                                                show_progress=False), id_column="patient_id")
    assert (tmp_path / "a/metrics.json").read_bytes() == (tmp_path / "b/metrics.json").read_bytes()
    other = train_tabular(frame, task, tmp_path / "c", TrainOptions(learner="random-forest", seed=1, cv="3x2",
                                                                    n_boot=100, show_progress=False))
    assert other.metrics != json.loads((tmp_path / "a/metrics.json").read_text())


def test_metrics_json_layout_and_report_contents(tmp_path):
    frame = risk_frame(300)
    result = train_tabular(frame, custom_task(tmp_path / "d.csv", "outcome"), tmp_path / "m",
                           TrainOptions(learner="logistic", cv="3x2", n_boot=100, show_progress=False),
                           id_column="patient_id")
    metrics = json.loads((tmp_path / "m/metrics.json").read_text())
    assert metrics == result.metrics
    assert set(metrics["test"]) == {"auroc", "auprc", "accuracy", "sensitivity", "specificity", "ppv", "npv",
                                    "f1", "brier", "ece"}
    for entry in metrics["test"].values():
        assert set(entry) == {"value", "ci_low", "ci_high"}
    assert set(metrics["cv"]["auroc"]) >= {"mean", "std"}
    assert metrics["split"]["sizes"] == {"train": 180, "val": 60, "test": 60}
    assert {row["column"] for row in metrics["subgroups"]} == {"sex", "age"}
    report = (tmp_path / "m/report.html").read_text()
    for needle in ("95% bootstrap CI", "Cross-validation", "Subgroups", "duplicate", "data:image/png;base64",
                   "threshold"):
        assert needle in report
    card = (tmp_path / "m/card.md").read_text()
    for needle in ("## Intended use", "## Limitations", "| auroc |", "## Subgroups"):
        assert needle in card
    assert not (tmp_path / "m/model.json").read_text().count("P00001")  # no patient identifiers stored


def test_group_column_keeps_patients_together(tmp_path):
    frame = risk_frame(300)
    frame["patient"] = np.repeat(np.arange(100), 3)
    result = train_tabular(frame.drop(columns=["patient_id"]), custom_task(tmp_path / "d.csv", "outcome"),
                           tmp_path / "m", TrainOptions(learner="logistic", **FAST), group_column="patient")
    assert result.metrics["split"]["group_column"] == "patient"
    assert "patient" not in load_model(tmp_path / "m").schema.feature_names


def test_threshold_for_target_sensitivity(tmp_path):
    result = train_tabular(risk_frame(400), custom_task(tmp_path / "d.csv", "outcome"), tmp_path / "m",
                           TrainOptions(learner="logistic", threshold="sensitivity:0.95", **FAST))
    assert result.metrics["decision"]["rule"] == "sensitivity"


def test_wdbc_acceptance(tmp_path):
    """Foundation acceptance: WDBC test AUROC >= 0.99 with its CI, ECE <= 0.05 (data ships in scikit-learn)."""
    result = train_task_by_name("breast-cancer-wdbc", tmp_path / "m", TrainOptions(seed=0, show_progress=False))
    test = result.metrics["test"]
    assert test["auroc"]["value"] >= 0.99 and test["auroc"]["ci_low"] < test["auroc"]["value"]
    assert test["ece"]["value"] <= 0.05


def test_cleveland_reads_real_data_with_missing_markers(tmp_path):
    require_data("tabular/heart_disease_uci/processed.cleveland.data")
    from medai.data.registry import get_dataset

    frame = get_dataset("heart-disease-cleveland").load()
    assert frame.shape == (303, 14) and frame["ca"].isna().sum() == 4 and frame["thal"].isna().sum() == 2
    pima = get_dataset("diabetes-pima").load()
    assert pima["glucose"].isna().sum() == 5 and (pima["insulin"] == 0).sum() == 0
    result = train_task_by_name("heart-disease-cleveland", tmp_path / "m",
                                TrainOptions(seed=0, cv="5x2", n_boot=100, show_progress=False))
    assert 0.85 <= result.metrics["cv"]["auroc"]["mean"] <= 0.97  # far higher would mean a leak


def test_dataset_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    source = require_data("tabular/pima_indians_diabetes/pima-indians-diabetes.data.csv")
    fake = tmp_path / "tabular/pima_indians_diabetes"
    fake.mkdir(parents=True)
    data = pd.read_csv(source, header=None)
    data.iloc[0, 0] += 1
    data.to_csv(fake / "pima-indians-diabetes.data.csv", header=False, index=False)
    monkeypatch.setenv("MEDAI_DATA_DIR", str(tmp_path))
    from medai.data.registry import get_dataset
    from medai.errors import IntegrityError

    with pytest.raises(IntegrityError, match="sha256"):
        get_dataset("diabetes-pima").load()
