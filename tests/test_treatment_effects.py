"""The treatment-effect kind: --treatment/--outcome through the road, EconML learners, ATE/PEHE with CIs, policy
values, `medai recommend` (abstaining where the effect is zero), the service, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_treatment_survival import run


def trial_frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """Confounded assignment (older patients treated more often); the treatment helps group A by 2 and does
    nothing for group B."""
    rng = np.random.default_rng(seed)
    age = rng.normal(0, 1, n)
    group = rng.choice(["A", "B"], n)
    other = rng.normal(0, 1, n)
    treated = (rng.random(n) < 1 / (1 + np.exp(-0.8 * age))).astype(int)
    effect = np.where(group == "A", 2.0, 0.0)
    outcome = 1.0 + age + 0.5 * other + treated * effect + rng.normal(0, 1, n)
    return pd.DataFrame({"pid": [f"T{i}" for i in range(n)], "age": age, "group": group, "other": other,
                         "treated": treated, "score": outcome, "true_effect": effect})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from medai.road import TrainOptions, train_data

    folder = tmp_path_factory.mktemp("effects")
    trial_frame().to_csv(folder / "trial.csv", index=False)
    options = TrainOptions(learner="t", seed=0, id_column="pid", show_progress=False, n_boot=200,
                           extra={"treatment": "treated", "outcome": "score", "true_effect": "true_effect",
                                  "outcome_model": "ridge"})
    return folder, train_data(folder / "trial.csv", folder / "model", options)


def test_train_writes_ate_pehe_and_policy(trained):
    folder, result = trained
    metrics = json.loads((folder / "model/metrics.json").read_text())
    assert metrics["kind"] == "treatment-effect"
    for name in ("ate", "pehe", "ate_error", "ate_ipw"):
        assert set(metrics["test"][name]) == {"value", "ci_low", "ci_high"}
    assert metrics["test"]["pehe"]["value"] < 0.6 and metrics["test"]["ate_error"]["value"] < 0.4
    assert metrics["test"]["ate"]["ci_low"] < 1.0 < metrics["test"]["ate"]["ci_high"]  # true ATE ~ 1
    policy = metrics["policy"]
    assert set(policy["arms"]) == {"0", "1"} and {"value", "ci_low", "ci_high"} <= set(policy["learned"])
    # treating only group A beats treating everyone with either arm
    assert policy["learned"]["value"] >= max(v["value"] for v in policy["arms"].values()) - 0.05
    assert "significant" in policy and metrics["overlap"]["share_inside"] > 0.9
    report = (folder / "model/report.html").read_text()
    assert "standardized mean differences" in report and "Policy evaluation" in report
    assert (folder / "model/plots/policy_value.png").exists()
    assert (folder / "model/plots/propensity_by_arm.png").exists()


def test_recommend_abstains_where_the_effect_is_zero(trained, capsys):
    folder, _ = trained
    patients = trial_frame(300, seed=7).drop(columns=["treated", "score", "true_effect"])
    patients.to_csv(folder / "patients.csv", index=False)
    code, _, err = run(["recommend", folder / "model", folder / "patients.csv", "-o", folder / "rec.csv"], capsys)
    assert code == 0, err
    table = pd.read_csv(folder / "rec.csv")
    assert list(table.columns[:7]) == ["pid", "recommended_arm", "expected_benefit", "benefit_low", "benefit_high",
                                       "confident", "reason"]
    in_a = (patients["group"] == "A").to_numpy()
    assert table.loc[in_a, "confident"].mean() > 0.9 and (table.loc[in_a, "recommended_arm"] == 1).all()
    assert table.loc[~in_a, "confident"].mean() < 0.2
    assert (table.loc[~in_a & ~table["confident"], "reason"].str.contains("includes no benefit")).all()
    assert (table["benefit_low"] <= table["expected_benefit"]).all()
    assert (table["expected_benefit"] <= table["benefit_high"]).all()


def test_service_and_explain(trained, capsys):
    from fastapi.testclient import TestClient

    from medai.client import Client
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    folder, _ = trained
    Registry().register(folder / "model", name="trial-effect")
    app = create_app(Settings(job_poll_s=0.05, rate_limit=100_000))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        answer = Client(key=key, http=http).predict("trial-effect", [
            {"age": 0.0, "group": "A", "other": 0.0}, {"age": 0.0, "group": "B", "other": 0.0}])
    a, b = answer["predictions"]
    assert a["recommended_arm"] == "1" and a["confident"] and a["effects"]["1"]["effect"] == pytest.approx(2, abs=0.5)
    assert not b["confident"] and b["benefit_low"] <= 0
    code, stdout, err = run(["explain", folder / "model", folder / "patients.csv", "--json", "--top-k", "1"], capsys)
    assert code == 0, err
    assert json.loads(stdout)[0]["contributions"][0]["feature"] == "group"


def test_econml_learners_estimate_effects_with_intervals():
    from medai.modalities.treatment.effects import EffectLearner

    frame = trial_frame(300, seed=1)
    X, y = frame[["age", "group", "other"]], frame[["treated", "score", "true_effect"]].to_numpy(float)
    for learner in ("s", "x", "dr", "causal-forest"):
        model = EffectLearner(learner=learner, base="ridge", n_bootstrap=3, seed=0).fit(X, y)
        effects = model.predict_effects(X)
        assert effects.shape == (300, 2, 5), learner
        assert np.sqrt(np.mean((effects[:, 1, 1] - y[:, 2]) ** 2)) < 1.2, learner
        assert (effects[:, 1, 2] <= effects[:, 1, 1] + 1e-9).all()
        assert (effects[:, 1, 1] <= effects[:, 1, 3] + 1e-9).all()


def test_bad_treatment_data_is_a_clear_error(tmp_path, capsys):
    frame = trial_frame(200)
    base = ["--treatment", "treated", "--outcome", "score", "--out", tmp_path / "m", "--no-register"]
    frame.assign(treated=1).to_csv(tmp_path / "one.csv", index=False)
    code, _, err = run(["train", "--data", tmp_path / "one.csv", *base], capsys)
    assert code == 2 and "single arm" in err
    frame.assign(treated=(frame["age"] > 0).astype(int)).to_csv(tmp_path / "sep.csv", index=False)
    code, _, err = run(["train", "--data", tmp_path / "sep.csv", *base, "--outcome-model", "ridge"], capsys)
    assert code == 2 and "no overlap" in err
    frame.assign(score=frame["score"].where(frame.index != 4)).to_csv(tmp_path / "gap.csv", index=False)
    code, _, err = run(["train", "--data", tmp_path / "gap.csv", *base], capsys)
    assert code == 2 and "missing in row 5" in err
    frame.to_csv(tmp_path / "ok.csv", index=False)
    code, _, err = run(["train", "--data", tmp_path / "ok.csv", "--treatment", "treated", "--out", tmp_path / "m"],
                       capsys)
    assert code == 2 and "--outcome" in err
    code, _, err = run(["train", "--data", tmp_path / "ok.csv", *base, "--time", "age", "--event", "treated"], capsys)
    assert code == 2 and "not both" in err


def test_recommend_refuses_other_kinds(tmp_path, capsys):
    from test_treatment_survival import survival_frame

    from medai.road import TrainOptions, train_data

    survival_frame(120).to_csv(tmp_path / "s.csv", index=False)
    train_data(tmp_path / "s.csv", tmp_path / "m", TrainOptions(learner="cox", show_progress=False, n_boot=20,
                                                                extra={"time": "days", "event": "died"}))
    code, _, err = run(["recommend", tmp_path / "m", tmp_path / "s.csv"], capsys)
    assert code == 2 and "treatment-effect model" in err
