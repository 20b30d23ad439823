"""Longitudinal networks (GRU-D, causal Transformer) through the road, and hour-by-hour replay."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_cli import run
from test_longitudinal import synthetic_cohort

from medai.modalities.longitudinal.early_warning import alert_hours, alert_summary


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    events, labels = synthetic_cohort(120, seed=2)
    events.to_csv(root / "events.csv", index=False)
    labels.assign(event_hours=np.where(labels.died == 1, 60.0, np.nan)).to_csv(root / "labels.csv", index=False)
    return root / "events.csv", root / "labels.csv"


@pytest.mark.parametrize("learner", ["grud", "transformer"])
def test_networks_train_package_and_score_causally(learner, cohort, tmp_path, capsys):
    from medai.modalities.longitudinal.reading import read_stays
    from medai.road import load_model

    events, labels = cohort
    code, stdout, err = run(["train", "--data", events, "--labels", labels, "--target", "died", "--learner", learner,
                             "--epochs", "1", "--out", tmp_path / "m", "--cv", "none", "--json", "--no-register"],
                            capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["training"]["best_epoch"] == 1 and metrics["test"]["auroc"]["value"] is not None
    assert (tmp_path / "m/network.safetensors").is_file() and not (tmp_path / "m/model.skops").exists()
    model = load_model(tmp_path / "m")
    stays = read_stays(events).stays
    full = model.scores(stays)
    code, _, err = run(["predict", tmp_path / "m", events, "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    assert np.allclose(pd.read_csv(tmp_path / "p.csv")["probability"], full, atol=1e-6)
    # causal: data after hour 10 never changes the risk at hour 10
    at_10 = model.scores(stays.until(10.0))
    shifted = stays.until(48.0)
    shifted.value = shifted.value.copy()
    shifted.value[shifted.time > 10.0] += 50.0
    assert np.allclose(model.scores(shifted.until(10.0)), at_10, atol=1e-6)
    assert not np.allclose(at_10, full)


def test_stream_replay_writes_trajectories_alerts_and_early_warning(cohort, tmp_path, capsys):
    events, labels = cohort
    code, _, err = run(["train", "--data", events, "--labels", labels, "--target", "died", "--out", tmp_path / "m",
                        "--cv", "none", "--no-register"], capsys)
    assert code == 0, err
    code, stdout, err = run(["stream", "replay", tmp_path / "m", events, "--labels", labels, "-o",
                             tmp_path / "t.csv", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    frame = pd.read_csv(tmp_path / "t.csv")
    assert summary["stays"] == 120 and frame["stay_id"].nunique() == 120 and frame["hour"].min() == 1
    assert summary["alerts"] == int(frame["alert"].sum())
    warning = summary["early_warning"]
    assert [r["hours"] for r in warning["by_hours"]] == [6, 12, 24, 36, 48]
    assert warning["alerts"]["median_lead_time_hours"]["value"] > 0  # outcome at 60 h, alerts before
    code, _, err = run(["predict", tmp_path / "m", events, "-o", tmp_path / "p.csv"], capsys)
    last = frame.sort_values("hour").groupby("stay_id").tail(1).set_index("stay_id")["risk"]
    predicted = pd.read_csv(tmp_path / "p.csv").set_index("stay_id")["probability"]
    assert np.allclose(last.loc[predicted.index], predicted, atol=1e-6)
    code, _, err = run(["stream", "replay", tmp_path / "m", events, "--step", "0"], capsys)
    assert code == 2 and "--step" in err


def test_alerts_fire_once_per_upward_crossing():
    hours = np.array([1.0, 2, 3, 4, 5, 6])
    risk = np.array([[0.1, 0.6, 0.7, 0.2, 0.8, np.nan],  # two crossings
                     [0.9, 0.9, 0.9, 0.9, 0.9, 0.9],  # above from the first hour: one alert
                     [0.1, 0.2, 0.3, 0.1, 0.2, 0.1]])  # never
    assert alert_hours(hours, risk, 0.5) == [[2.0, 5.0], [1.0], []]
    summary = alert_summary(hours, risk, 0.5, np.array([1, 0, 1]), np.array([10.0, np.nan, 8.0]), n_boot=20)
    assert summary["alerts"] == 3 and summary["sensitivity"]["value"] == 0.5 and summary["ppv"]["value"] == 0.5
    assert summary["median_lead_time_hours"]["value"] == 8.0
    assert summary["alerts_per_patient_day"]["value"] == pytest.approx(3 / ((5 + 6 + 6) / 24), rel=1e-4)
