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
        assert effects.shape == (300, 2, 6), learner
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


@pytest.mark.parametrize("name", ["x", "dr", "causal-forest"])
def test_effect_learners_survive_save_and_reload(tmp_path, name):
    """The artifact's safe format (skops, trusted types only) round-trips every EconML learner exactly."""
    from medai.modalities import get_modality
    from medai.modalities.treatment.effects import EffectLearner

    frame = trial_frame(260, seed=3)
    X, y = frame[["age", "group", "other"]], frame[["treated", "score", "true_effect"]].to_numpy(float)
    model = EffectLearner(learner=name, base="ridge", n_bootstrap=2, seed=0).fit(X[:200], y[:200], X[200:], y[200:])
    modality = get_modality("treatment")
    for file, data in modality.save_learner(model).items():
        (tmp_path / file).write_bytes(data)
    loaded = modality.load_learner(tmp_path, {})
    assert loaded.chosen_learner_ == name and loaded.default_arm_ == model.default_arm_
    np.testing.assert_allclose(loaded.predict_effects(X), model.predict_effects(X))


def exponential_frame(n: int, seed: int) -> pd.DataFrame:
    """Untreated outcome grows multiplicatively with the features (exp of a linear score); treated is linear."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 4))
    treated = (rng.random(n) < 0.3).astype(int)
    mu0 = np.exp(0.9 * x[:, 0] + 0.6 * x[:, 1])
    mu1 = 4.0 + x[:, 0] + x[:, 2]
    outcome = np.where(treated == 1, mu1, mu0) + rng.normal(0, 0.5, n)
    return pd.DataFrame({**{f"x{j}": x[:, j] for j in range(4)}, "treated": treated, "y": outcome,
                         "true_effect": mu1 - mu0})


def test_auto_outcome_model_picks_the_log_link_for_multiplicative_outcomes(tmp_path):
    from medai.modalities import get_modality
    from medai.modalities.treatment.effects import EffectLearner, choose_base

    frame = exponential_frame(700, seed=0)
    X, y = frame[["x0", "x1", "x2", "x3"]], frame[["treated", "y", "true_effect"]].to_numpy(float)
    train, test = slice(0, 560), slice(560, None)
    auto = EffectLearner(learner="t", base="auto", n_bootstrap=0, seed=0).fit(X[train], y[train])
    ridge = EffectLearner(learner="t", base="ridge", n_bootstrap=0, seed=0).fit(X[train], y[train])
    assert auto.bases_[0] == "glm-log"
    pehe = {name: float(np.sqrt(np.mean((m.predict(X[test]) - y[test, 2]) ** 2))) for name, m in
            (("auto", auto), ("ridge", ridge))}
    assert pehe["auto"] < 0.5 * pehe["ridge"], pehe
    modality = get_modality("treatment")
    for file, data in modality.save_learner(auto).items():
        (tmp_path / file).write_bytes(data)
    np.testing.assert_allclose(modality.load_learner(tmp_path, {}).predict(X[test]), auto.predict(X[test]))
    # an arm whose mean outcome is not positive cannot take a log link: the candidate is skipped, not an error
    Z = np.random.default_rng(1).normal(size=(80, 3))
    chosen, scores = choose_base(Z, Z[:, 0] - 5.0, seed=0)
    assert scores["glm-log"] == float("inf") and chosen != "glm-log"


def three_arm_frame(n: int, seed: int, sign: float = 1.0) -> pd.DataFrame:
    """Arm 2 beats the reference by 1.5 for everyone (the best arm on average); arm 1 beats it by 4 in group A (a
    quarter of the patients) and not at all elsewhere."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], n, p=[0.25, 0.75])
    age = rng.normal(0, 1, n)
    arm = rng.integers(0, 3, n)
    effect = np.select([arm == 1, arm == 2], [np.where(group == "A", 4.0, 0.0), np.full(n, 1.5)], 0.0)
    outcome = sign * (age + effect + rng.normal(0, 1, n))
    return pd.DataFrame({"age": age, "group": group, "arm": arm, "y": outcome, "true_effect": np.nan})


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_policy_keeps_the_best_arm_unless_another_is_confidently_better(sign):
    from medai.evaluation.kinds.treatment_effect import TreatmentEffectEvaluator, best_arm, policy_values
    from medai.modalities.treatment.effects import EffectLearner

    frames = [three_arm_frame(n, seed, sign) for n, seed in ((1200, 0), (400, 1), (600, 2))]
    (X, y), (X_val, y_val), (X_test, y_test) = [
        (f[["age", "group"]], f[["arm", "y", "true_effect"]].to_numpy(float)) for f in frames]
    model = EffectLearner(learner="t", base="ridge", n_arms=3, n_bootstrap=20, seed=0,
                          higher_is_better=sign > 0).fit(X, y, X_val, y_val)
    assert model.default_arm_ == 2 and "validation" in model.arm_values_["how"]
    s = model.predict_effects(X_test)
    assert s.shape == (600, 3, 6) and (s[:, :, 5].sum(axis=1) == 1).all()
    given = best_arm(s, sign > 0)
    in_a = (X_test["group"] == "A").to_numpy()
    assert (given[in_a] == 1).mean() > 0.9 and (given[~in_a] == 2).mean() > 0.95
    decision = TreatmentEffectEvaluator().decide(None, None, type("T", (), {
        "fields": {"higher_is_better": sign > 0}, "classes": ["0", "1", "2"]})(), None, {})
    policy = policy_values(y_test, s, decision, n_boot=100, seed=0)
    assert policy["best_arm"] == "2" and policy["significant"]  # group A gains 2.5 over arm 2
    assert sign * policy["learned"]["value"] > sign * policy["arms"]["2"]["value"]
