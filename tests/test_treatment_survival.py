"""The survival kind: --time/--event through the road, Cox/forest learners, C-index/IBS with CIs, curves from
predict (CLI and service), and clear errors for bad follow-up data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medai.cli import main


def survival_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Exponential event times whose hazard rises with age and stage, with independent censoring."""
    rng = np.random.default_rng(seed)
    age = rng.normal(60, 10, n)
    stage = rng.choice(["I", "II", "III"], n)
    noise = rng.normal(size=n)
    log_hazard = 0.08 * (age - 60) + np.select([stage == "II", stage == "III"], [0.9, 1.8], 0.0)
    event_time = rng.exponential(1.0 / (0.002 * np.exp(log_hazard)))
    censor_time = rng.uniform(100, 1500, n)
    return pd.DataFrame({"pid": [f"S{i}" for i in range(n)], "age": age, "stage": stage, "noise": noise,
                         "days": np.round(np.minimum(event_time, censor_time), 1),
                         "died": (event_time <= censor_time).astype(int)})


def run(args, capsys) -> tuple[int, str, str]:
    import sys

    old = sys.argv
    sys.argv = ["medai", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One Cox model through the road's --data path (shared by the tests that only read it)."""
    from medai.road import TrainOptions, train_data

    folder = tmp_path_factory.mktemp("survival")
    survival_frame().to_csv(folder / "cohort.csv", index=False)
    options = TrainOptions(learner="cox", seed=1, id_column="pid", show_progress=False,
                           extra={"time": "days", "event": "died", "horizons": "180,365,730", "time_unit": "days"})
    result = train_data(folder / "cohort.csv", folder / "model", options)
    return folder, result


def test_train_writes_the_contract_metrics_with_cis(trained):
    folder, result = trained
    metrics = json.loads((folder / "model/metrics.json").read_text())
    assert metrics["kind"] == "survival" and result.model_json["modality"] == "treatment"
    for name in ("c_index", "c_index_uno", "integrated_brier"):
        entry = metrics["test"][name]
        assert set(entry) == {"value", "ci_low", "ci_high"}
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert metrics["test"]["c_index"]["value"] > 0.68  # the hazard depends on age and stage
    assert 0 < metrics["test"]["integrated_brier"]["value"] < 0.25
    assert {"auc_at_180", "auc_at_365", "brier_at_730"} <= set(metrics["test"])
    assert metrics["split"]["balance"].startswith("event rate")
    # Cox: hazard ratios with CIs and the Schoenfeld test; the older and later-stage, the higher the hazard
    ratios = {r["feature"]: r for r in metrics["cox"]["hazard_ratios"]}
    assert ratios["age"]["ci_low"] > 1 and ratios["noise"]["ci_low"] < 1 < ratios["noise"]["ci_high"]
    assert {r["feature"] for r in metrics["cox"]["schoenfeld"]} >= {"age", "noise"}
    calibration = metrics["calibration"]["365"]
    assert len(calibration) >= 2 and all(0 <= r["observed"] <= 1 for r in calibration)
    assert metrics["risk_groups_logrank"]["p"] < 0.05
    report = (folder / "model/report.html").read_text()
    assert "Schoenfeld" in report and "hazard ratio" in report
    assert (folder / "model/plots/km_by_risk_tertile.png").exists()


def test_predict_gives_curves_median_and_risk_at_horizons(trained, capsys):
    folder, _ = trained
    new = survival_frame(5, seed=9).drop(columns=["days", "died"])
    new.to_csv(folder / "new.csv", index=False)
    code, stdout, err = run(["predict", folder / "model", folder / "new.csv", "--json"], capsys)
    assert code == 0, err
    items = json.loads(stdout)
    assert [i["pid"] for i in items] == new["pid"].tolist()
    first = items[0]
    curve = np.asarray(first["survival_curve"]["survival"])
    assert np.all(np.diff(curve) <= 1e-12) and 0 <= curve.min() <= curve.max() <= 1
    assert set(first["risk_at"]) == {"180", "365", "730"}
    assert first["risk_at"]["365"] == pytest.approx(1 - first["survival_at"]["365"])
    times = np.asarray(first["survival_curve"]["times"])
    if first["median_survival"] is not None:
        assert curve[np.searchsorted(times, first["median_survival"])] <= 0.5
    code, _, err = run(["predict", folder / "model", folder / "new.csv", "-o", folder / "p.csv"], capsys)
    table = pd.read_csv(folder / "p.csv")
    assert code == 0 and {"risk_score", "median_survival", "risk_at_365", "survival_at_730"} <= set(table.columns)
    # the older, later-stage patient carries the higher risk
    assert np.corrcoef(table["risk_score"], new["age"])[0, 1] > 0


def test_evaluate_and_explain(trained, capsys):
    folder, _ = trained
    survival_frame(200, seed=5).to_csv(folder / "external.csv", index=False)
    code, stdout, err = run(["evaluate", folder / "model", "--data", folder / "external.csv", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["test"]["c_index"]["value"] > 0.65
    code, stdout, err = run(["explain", folder / "model", folder / "external.csv", "--json", "--top-k", "2"], capsys)
    assert code == 0, err
    first = json.loads(stdout)[0]
    assert first["explains"] == "log relative hazard" and len(first["contributions"]) == 2


def test_the_service_returns_survival_curves(trained):
    from fastapi.testclient import TestClient

    from medai.client import Client
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    folder, _ = trained
    Registry().register(folder / "model", name="cohort-survival")
    app = create_app(Settings(job_poll_s=0.05, rate_limit=100_000))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        answer = Client(key=key, http=http).predict("cohort-survival", [
            {"age": 80, "stage": "III", "noise": 0.0}, {"age": 40, "stage": "I", "noise": 0.0}])
    assert answer["kind"] == "survival"
    old, young = answer["predictions"]
    assert old["risk_at"]["365"] > young["risk_at"]["365"]
    assert len(old["survival_curve"]["times"]) == len(old["survival_curve"]["survival"]) > 10


def test_forest_learners_explain_with_shap(tmp_path):
    from medai.road import TrainOptions, train_data

    survival_frame(200, seed=2).to_csv(tmp_path / "c.csv", index=False)
    result = train_data(tmp_path / "c.csv", tmp_path / "rsf", TrainOptions(
        learner="rsf", seed=0, show_progress=False, extra={"time": "days", "event": "died"}))
    assert result.metrics["test"]["c_index"]["value"] > 0.6
    importance = result.metrics["feature_importance"]
    assert importance["age"] > importance["noise"]
    assert "horizons at the quartiles" in result.metrics["target"]["how"]


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(days=f["days"].where(f.index != 3, -5.0)), "negative in row 4"),
    (lambda f: f.assign(days=f["days"].where(f.index != 7)), "missing in row 8"),
    (lambda f: f.assign(died=f["died"] + 1), "must be 0/1 or true/false"),
    (lambda f: f.assign(died=f["died"].map({0: "alive", 1: "dead"})), "--event-value"),
    (lambda f: f.assign(died=0), "0 event(s)"),
])
def test_bad_follow_up_data_is_a_clear_error(tmp_path, capsys, change, message):
    change(survival_frame(60)).to_csv(tmp_path / "bad.csv", index=False)
    code, _, err = run(["train", "--data", tmp_path / "bad.csv", "--time", "days", "--event", "died",
                        "--out", tmp_path / "m", "--no-register"], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_bad_options_are_clear_errors(tmp_path, capsys):
    survival_frame(60).to_csv(tmp_path / "c.csv", index=False)
    base = ["train", "--data", tmp_path / "c.csv", "--out", tmp_path / "m", "--no-register"]
    code, _, err = run([*base, "--time", "days"], capsys)
    assert code == 2 and "--event" in err
    code, _, err = run([*base, "--time", "days", "--event", "died", "--horizons", "99999"], capsys)
    assert code == 2 and "beyond the follow-up" in err
    code, _, err = run([*base, "--time", "when", "--event", "died"], capsys)
    assert code == 2 and "'when' is not in" in err
    code, _, err = run([*base, "--time", "days", "--event", "died", "--learner", "svm"], capsys)
    assert code == 2 and "unknown survival learner" in err


def test_an_event_coded_with_names_trains_with_event_value(tmp_path):
    from medai.road import TrainOptions, train_data

    frame = survival_frame(150, seed=3)
    frame["status"] = frame.pop("died").map({0: "censored", 1: "dead"})
    frame.to_csv(tmp_path / "c.csv", index=False)
    result = train_data(tmp_path / "c.csv", tmp_path / "m", TrainOptions(
        learner="coxnet", seed=0, show_progress=False, n_boot=50,
        extra={"time": "days", "event": "status", "event_value": "dead"}))
    assert result.metrics["test"]["c_index"]["value"] > 0.6
    assert "events of 150 records" in result.metrics["target"]["how"]


def test_harrell_equals_scikit_survival():
    from sksurv.metrics import concordance_index_censored

    from medai.evaluation.kinds.survival import harrell

    rng = np.random.default_rng(0)
    for _ in range(3):
        time, event, risk = np.round(rng.exponential(10, 150)), rng.random(150) < 0.6, np.round(rng.normal(size=150), 1)
        assert harrell(np.column_stack([time, event]), risk) == pytest.approx(
            concordance_index_censored(event, time, risk)[0])


def test_built_in_task_on_bundled_data(tmp_path):
    from medai.road import TrainOptions, train_task

    result = train_task("veterans-survival", tmp_path / "v", TrainOptions(learner="cox", seed=0, n_boot=50,
                                                                          show_progress=False))
    assert result.metrics["test"]["c_index"]["value"] > 0.6
    assert set(result.model_json["target"]["fields"]["horizons"]) == {30.0, 90.0, 180.0}


def test_cox_retries_with_more_ridge_when_newton_diverges(monkeypatch):
    """A rare binary feature can make the unpenalised Newton steps diverge ("search direction contains NaN"):
    the Cox learner refits with a larger ridge penalty instead of failing."""
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    from medai.errors import MedAIError
    from medai.modalities.treatment.survival import SurvivalLearner

    real_fit = CoxPHSurvivalAnalysis.fit

    def fragile(self, X, y):
        if self.alpha < 1e-2:
            raise ValueError("search direction contains NaN or infinite values")
        return real_fit(self, X, y)

    monkeypatch.setattr(CoxPHSurvivalAnalysis, "fit", fragile)
    frame = survival_frame(120, seed=5)
    X, y = frame[["age", "stage", "noise"]], frame[["days", "died"]].to_numpy(float)
    model = SurvivalLearner(learner="cox", seed=0).fit(X, y)
    assert model.model_.alpha == 1e-2 and np.isfinite(model.predict(X)).all()
    monkeypatch.setattr(CoxPHSurvivalAnalysis, "fit", lambda self, X, y: (_ for _ in ()).throw(ValueError("nan")))
    with pytest.raises(MedAIError, match="does not converge"):
        SurvivalLearner(learner="cox", seed=0).fit(X, y)


def test_coxnet_falls_back_to_the_warm_started_path_when_a_single_penalty_overflows(monkeypatch):
    """Coordinate descent from zero at one small penalty can overflow (seen on WHAS500's spline features): the
    spline Cox then fits the path from the largest penalty down to the chosen one and predicts at the chosen one;
    when even the path overflows the error names the way out."""
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    from medai.errors import MedAIError
    from medai.modalities.treatment.survival import SplineCox, SurvivalLearner

    frame = survival_frame(150, seed=9)
    X, y = frame[["age", "stage", "noise"]], frame[["days", "died"]].to_numpy(float)
    reference = SurvivalLearner(learner="cox-spline", seed=0).fit(X, y)
    chosen = reference.model_.model_.alphas[0]
    real_fit = CoxnetSurvivalAnalysis.fit

    def overflow_alone(self, X, y):
        if self.alphas is not None and len(self.alphas) == 1:
            raise ArithmeticError("Numerical error, because weights are too large. Consider increasing alpha.")
        return real_fit(self, X, y)

    monkeypatch.setattr(CoxnetSurvivalAnalysis, "fit", overflow_alone)
    model = SurvivalLearner(learner="cox-spline", seed=0).fit(X, y)
    assert isinstance(model.model_, SplineCox)
    path = list(model.model_.model_.alphas)
    assert len(path) > 1 and path[-1] == pytest.approx(chosen) and path == sorted(path, reverse=True)
    np.testing.assert_allclose(model.predict(X), reference.predict(X), rtol=1e-3, atol=1e-3)
    assert model.predict_curves(X.iloc[:3], [100.0, 400.0]).shape == (3, 2)
    assert SurvivalLearner(learner="coxnet", seed=0).fit(X, y).model_.alphas[-1] > 0
    def overflow_final(self, X, y):  # the tuning fits (no baseline model) pass, every final fit overflows
        if self.fit_baseline_model:
            raise ArithmeticError("Numerical error, because weights are too large. Consider increasing alpha.")
        return real_fit(self, X, y)

    monkeypatch.setattr(CoxnetSurvivalAnalysis, "fit", overflow_final)
    with pytest.raises(MedAIError, match="overflows"):
        SurvivalLearner(learner="cox-spline", seed=0).fit(X, y)


def test_ensemble_averages_member_percentiles_not_raw_scores():
    """Members' risk scores live on different scales: the ensemble averages each member's score as a percentile
    of its own training-record scores, so a member with a large scale does not outvote the others."""
    from medai.modalities.treatment.survival import ensemble_risk, member_references, percentile

    class Member:
        def __init__(self, scale, sign):
            self.scale, self.sign = scale, sign

        def predict(self, Z):
            return self.sign * self.scale * Z[:, 0]

    Z = np.linspace(-1, 1, 21)[:, None]
    members = [Member(1000.0, 1.0), Member(0.01, -1.0)]  # opposite orderings, scales 1e5 apart
    references = member_references(members, Z)
    risk = ensemble_risk(members, references, Z)
    assert np.allclose(risk, 0.5)  # raw averaging would follow the first member's ordering
    np.testing.assert_allclose(percentile(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 2.0, 2.5, 9.0])),
                               [0.0, 0.375, 0.5, 1.0])


def test_ensemble_is_ridge_cox_spline_cox_rsf_rank_average_and_per_patient_stable():
    from medai.modalities.treatment.survival import RIDGE_ALPHAS, SplineCox, SurvivalLearner, percentile

    frame = survival_frame(160, seed=6)
    X, y = frame[["age", "stage", "noise"]], frame[["days", "died"]].to_numpy(float)
    model = SurvivalLearner(learner="ensemble", seed=0).fit(X, y)
    assert model.chosen_learner_ == "ensemble" and len(model.model_) == 3
    ridge, spline, forest = model.model_
    assert ridge.alpha in RIDGE_ALPHAS and type(forest).__name__ == "RandomSurvivalForest"
    assert isinstance(spline, SplineCox)
    Z = model.transform(X)
    expected = np.mean([percentile(np.sort(m.predict(Z)), m.predict(Z)) for m in model.model_], axis=0)
    np.testing.assert_allclose(model.predict(X), expected)
    assert 0 <= model.predict(X).min() and model.predict(X).max() <= 1
    # a new patient's risk does not depend on who else is in the batch (percentiles of the training scores)
    new = survival_frame(40, seed=60)[["age", "stage", "noise"]]
    assert model.predict(new.iloc[[7]])[0] == pytest.approx(model.predict(new)[7])
    assert harrell_of(model, X, y) > 0.7
    curves = model.predict_curves(X.iloc[:5], [100.0, 400.0])
    assert curves.shape == (5, 2) and (np.diff(curves, axis=1) <= 1e-12).all()


def test_one_se_rule_prefers_the_simpler_model_unless_the_complex_one_wins_by_more_than_one_se():
    from medai.errors import MedAIError
    from medai.modalities.treatment.survival import one_se_choice

    order = ("simple", "complex")
    # the complex model's mean is 0.02 higher, its standard error 0.022 (fold scores +-0.05 around 0.72)
    noisy = {"simple": [0.70] * 5, "complex": [0.67, 0.77, 0.67, 0.77, 0.72]}
    assert one_se_choice(noisy, order) == "simple"
    # the same mean advantage with steady folds (SE 0.0022) is a win by more than one standard error
    steady = {"simple": [0.70] * 5, "complex": [0.717, 0.727, 0.717, 0.727, 0.722]}
    assert one_se_choice(steady, order) == "complex"
    # the simpler model is also kept when it is the better one, and a middle rung is reachable
    assert one_se_choice({"simple": [0.8] * 3, "complex": [0.7] * 3}, order) == "simple"
    ladder = {"a": [0.60] * 4, "b": [0.70, 0.71, 0.70, 0.71], "c": [0.68, 0.74, 0.68, 0.74]}
    assert one_se_choice(ladder, ("a", "b", "c")) == "b"
    # folds without comparable pairs (NaN) are left out; a candidate without any scores is never chosen
    assert one_se_choice({"simple": [np.nan] * 3, "complex": [0.7, 0.7, np.nan]}, order) == "complex"
    assert one_se_choice({"simple": [np.nan], "complex": [np.nan]}, order) == "simple"
    with pytest.raises(MedAIError, match="complex"):
        one_se_choice({"simple": [0.7]}, order)
    with pytest.raises(MedAIError, match="at least one"):
        one_se_choice({}, ())


def test_select_applies_the_one_se_rule_to_inner_cv_scores(monkeypatch):
    """``select`` scores ridge Cox, spline Cox, RSF and the ensemble on 5 inner folds and keeps the simplest unless
    a more complex one wins by more than one standard error; the chosen model is then fitted on all records."""
    from medai.modalities.treatment import survival
    from medai.modalities.treatment.survival import SELECT_CANDIDATES, SELECT_FOLDS, SurvivalLearner, one_se_choice

    frame = survival_frame(160, seed=4)
    X, y = frame[["age", "stage", "noise"]], frame[["days", "died"]].to_numpy(float)
    model = SurvivalLearner(learner="select", seed=0).fit(X, y)
    assert list(model.selection_scores_) == list(SELECT_CANDIDATES) == list(model.selection_se_)
    assert all(0.5 < v <= 1 for v in model.selection_scores_.values())
    assert all(0 <= v < 0.2 for v in model.selection_se_.values())
    best = max(SELECT_CANDIDATES, key=model.selection_scores_.get)
    assert model.chosen_learner_ == next(name for name in SELECT_CANDIDATES if model.selection_scores_[name]
                                         >= model.selection_scores_[best] - model.selection_se_[best] - 1e-6)
    assert isinstance(model.model_, list) == (model.chosen_learner_ == "ensemble")
    assert harrell_of(model, X, y) > 0.7 and model.predict(X).shape == (160,)
    assert one_se_choice({"a": [0.6, 0.7]}, ("a",)) == "a"

    seen = {}

    def forced(scores):
        def fold_scores(self, Z, y, candidates, n_folds):
            seen["folds"], seen["candidates"] = n_folds, tuple(candidates)
            return {name: scores.get(name, [0.5] * 5) for name in candidates}
        return fold_scores

    noisy = [0.67, 0.77, 0.67, 0.77, 0.72]  # mean 0.72, standard error 0.022
    monkeypatch.setattr(survival.SurvivalLearner, "_fold_scores", forced({"cox-ridge": [0.70] * 5, "ensemble": noisy}))
    model = SurvivalLearner(learner="select", seed=0).fit(X, y)
    assert seen == {"folds": SELECT_FOLDS, "candidates": SELECT_CANDIDATES} and model.chosen_learner_ == "cox-ridge"
    assert not isinstance(model.model_, list) and model.selection_scores_["ensemble"] == pytest.approx(0.72)
    steady = [0.717, 0.727, 0.717, 0.727, 0.722]  # the same mean, standard error 0.0022
    monkeypatch.setattr(survival.SurvivalLearner, "_fold_scores", forced({"cox-ridge": [0.70] * 5, "ensemble": steady}))
    model = SurvivalLearner(learner="select", seed=0).fit(X, y)
    assert model.chosen_learner_ == "ensemble" and len(model.model_) == 3
    # auto is the fixed ensemble: no inner selection
    model = SurvivalLearner(learner="auto", seed=0).fit(X, y)
    assert model.chosen_learner_ == "ensemble" and model.selection_scores_ == {}


def harrell_of(model, X, y) -> float:
    from medai.evaluation.kinds.survival import harrell

    return harrell(y, model.predict(X))


def test_cox_ridge_penalty_is_chosen_by_inner_cv(monkeypatch):
    """The ridge penalty is the one with the best inner cross-validated C-index: with pure-noise features the
    heaviest penalties win; forcing the scores shows the argmax is taken."""
    from medai.modalities.treatment import survival
    from medai.modalities.treatment.survival import RIDGE_ALPHAS, SurvivalLearner

    frame = survival_frame(120, seed=7)
    X, y = frame[["age", "stage", "noise"]], frame[["days", "died"]].to_numpy(float)
    model = SurvivalLearner(learner="cox-ridge", seed=0).fit(X, y)
    assert model.model_.alpha in RIDGE_ALPHAS and model.chosen_learner_ == "cox-ridge"
    assert harrell_of(model, X, y) > 0.65
    favoured = RIDGE_ALPHAS[2]
    calls = iter(range(10_000))

    def fake_harrell(y_true, risk):
        return 1.0 if next(calls) % len(RIDGE_ALPHAS) == 2 else 0.5

    monkeypatch.setattr(survival, "harrell", fake_harrell)
    assert SurvivalLearner(learner="cox-ridge", seed=0).fit(X, y).model_.alpha == favoured


def test_cox_spline_follows_a_risk_that_bends_where_linear_cox_cannot():
    """A U-shaped hazard in age: linear Cox ranks held-out patients near chance, the spline Cox does not."""
    from medai.evaluation.kinds.survival import harrell
    from medai.modalities.treatment.survival import SplineCox, SurvivalLearner

    rng = np.random.default_rng(8)
    n = 400
    age = rng.uniform(30, 90, n)
    event_time = rng.exponential(1.0 / (0.002 * np.exp(0.004 * (age - 60) ** 2)))
    censor_time = rng.uniform(50, 1500, n)
    X = pd.DataFrame({"age": age, "noise": rng.normal(size=n)})
    y = np.column_stack([np.minimum(event_time, censor_time), event_time <= censor_time]).astype(float)
    train, test = slice(0, 300), slice(300, None)
    spline = SurvivalLearner(learner="cox-spline", seed=0).fit(X.iloc[train], y[train])
    linear = SurvivalLearner(learner="cox", seed=0).fit(X.iloc[train], y[train])
    assert isinstance(spline.model_, SplineCox) and spline.model_.columns_ == [0, 1]
    c_spline, c_linear = (harrell(y[test], m.predict(X.iloc[test])) for m in (spline, linear))
    assert c_spline > 0.65 and c_spline > c_linear + 0.1
    curves = spline.predict_curves(X.iloc[test][:3], [100.0, 300.0])
    assert curves.shape == (3, 2) and ((0 <= curves) & (curves <= 1)).all()
