"""Class-conditional (Mondrian) conformal sets: the textbook per-class quantile, coverage within every class under
label shift where marginal sets fail, the road's default, calibration records held out from early stopping, and
the option through the command line, a saved model, ``predict --json`` and the service."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import risk_frame
from test_cli import run
from test_conformal import classification

from medai.errors import MedAIError
from medai.evaluation.conformal import Conformal, _quantile, min_records
from medai.road import calibration


def test_class_conditional_sets_are_the_textbook_per_class_quantile():
    """Class k is in a record's set when 1 - p_k <= q_k, q_k the ceil((n_k + 1) * coverage)-th smallest score
    among the calibration records of class k (Vovk 2012; Angelopoulos & Bates 2021, section 4.1)."""
    y_cal = np.array([0] * 9 + [1] * 19)
    rng = np.random.default_rng(0)
    p_cal = np.where(y_cal == 1, rng.uniform(0.3, 1.0, 28), rng.uniform(0.0, 0.5, 28))  # positive probability
    model = Conformal.fit("binary", y_cal, p_cal, coverage=0.8, mode="class-conditional", classes=["no", "yes"],
                          positive_index=1)
    q_no = _quantile(p_cal[y_cal == 0], 0.8)  # score of "no" = 1 - p(no) = p
    q_yes = _quantile(1 - p_cal[y_cal == 1], 0.8)
    assert q_no == np.sort(p_cal[y_cal == 0])[7] and q_yes == np.sort(1 - p_cal[y_cal == 1])[15]  # ceil(0.8 * n+1)
    p = np.linspace(0, 1, 201)
    sets = model.predict(p, positive_index=1)["sets"]
    assert np.array_equal(sets[:, 0], p <= q_no) and np.array_equal(sets[:, 1], 1 - p <= q_yes)
    assert {k: len(v) for k, v in model.scores.items()} == {"no": 9, "yes": 19}


def shifted(seed: int):
    """A calibrated 3-class model; calibration records with 85/10/5% class balance, test records drawn from the
    same class-conditional distributions with 20/30/50% (label shift)."""
    y, proba = classification(30000, seed=seed, weights=np.array([0.85, 0.10, 0.05]))
    rng = np.random.default_rng(seed)
    cal = rng.choice(np.flatnonzero(np.arange(len(y)) < 15000), 1500, replace=False)
    pools = [np.flatnonzero((y == k) & (np.arange(len(y)) >= 15000)) for k in range(3)]
    test = np.concatenate([rng.choice(pool, n, replace=False) for pool, n in zip(pools, (200, 300, 500), strict=True)])
    return y[cal], proba[cal], y[test], proba[test]


def test_class_conditional_coverage_holds_in_every_class_under_label_shift_where_marginal_fails():
    results = {"standard": [], "class-conditional": []}
    for seed in range(8):
        y_cal, p_cal, y_test, p_test = shifted(seed)
        for mode in results:
            model = Conformal.fit("multiclass", y_cal, p_cal, coverage=0.9, mode=mode, classes=["a", "b", "c"])
            covered = model.predict(p_test)["sets"][np.arange(len(y_test)), y_test]
            results[mode].append([covered.mean(), *(covered[y_test == k].mean() for k in range(3))])
    standard, conditional = (np.mean(results[mode], axis=0) for mode in ("standard", "class-conditional"))
    assert standard[0] < 0.85 and standard[1:].min() < 0.8  # marginal sets miss under the shift, rare classes most
    assert conditional[0] >= 0.88 and conditional[1:].min() >= 0.88  # coverage within every class, so overall too


def test_auto_is_class_conditional_when_every_class_can_have_its_quantile():
    y, proba = classification(600, seed=9)
    auto = Conformal.fit("multiclass", y, proba, coverage=0.9, mode="auto", classes=["a", "b", "c"])
    assert auto.mode == "class-conditional" and "class-conditional (auto)" in auto.choice
    y_short = np.array([0] * 50 + [1] * 50 + [2] * 5)
    p_short = classification(105, seed=9)[1]
    fallback = Conformal.fit("multiclass", y_short, p_short, coverage=0.9, mode="auto", classes=["a", "b", "c"])
    assert fallback.mode == "standard" and "'c' (5)" in fallback.choice
    assert [min_records(c) for c in (0.8, 0.9, 0.95)] == [4, 9, 19]  # ceil((n + 1) * c) <= n, exact at 9 for 90%
    with pytest.raises(MedAIError, match=r"at least 9 calibration records of every class.*'c' has 5"):
        Conformal.fit("multiclass", y_short, p_short, coverage=0.9, mode="class-conditional", classes=["a", "b", "c"])
    assert Conformal.fit("multiclass", y_short, p_short, coverage=0.8, mode="class-conditional",
                         classes=["a", "b", "c"]).mode == "class-conditional"  # 4 per class suffice at 80%
    labels = (np.random.default_rng(1).random((200, 2)) < 0.5).astype(float)
    assert Conformal.fit("multilabel", labels, np.full((200, 2), 0.5), coverage=0.9, mode="auto",
                         classes=["x", "y"]).mode == "standard"


# -- calibration records held out from early stopping ----------------------------------------------------------
def test_calibration_split_is_seeded_stratified_disjoint_and_falls_back_when_too_small():
    val = np.arange(100, 300)
    strata = np.array([0, 1, 1, 1] * 50)
    stop, cal = calibration.calibration_split(val, strata, None, seed=3, coverage=0.9)
    assert len(np.intersect1d(stop, cal)) == 0 and np.array_equal(np.sort(np.concatenate([stop, cal])), val)
    assert len(cal) == 100 and np.mean(strata[cal - 100] == 0) == 0.25  # stratified
    again = calibration.calibration_split(val, strata, None, seed=3, coverage=0.9)
    assert all(np.array_equal(a, b) for a, b in zip((stop, cal), again, strict=True))
    assert not np.array_equal(calibration.calibration_split(val, strata, None, seed=4, coverage=0.9)[1], cal)
    groups = np.repeat(np.arange(50), 4)  # a patient's records stay on one side
    stop_g, cal_g = calibration.calibration_split(val, strata, groups, seed=0, coverage=0.9)
    assert not set(groups[stop_g - 100]) & set(groups[cal_g - 100])
    small = np.arange(12)  # 6 held out are too few at 90%: calibrate on all of validation
    assert all(np.array_equal(part, small) for part in calibration.calibration_split(small, small % 2, None, 0, 0.9))


def test_a_learner_that_watches_validation_is_calibrated_on_records_it_never_watched(tmp_path, monkeypatch):
    import importlib

    from helpers import train_frame

    road_train_module = importlib.import_module("medai.road.train")  # the module (medai.road.train is the function)

    seen = {}
    fit = road_train_module.fit_learner

    def watching(modality, learner, X, y, X_val=None, y_val=None):
        seen["val"] = X_val
        return fit(modality, learner, X, y, X_val, y_val)

    monkeypatch.setattr(road_train_module, "fit_learner", watching)
    frame = risk_frame(600, seed=5)
    plain = train_frame(frame, tmp_path / "plain", learner="logistic", cv=None, n_boot=50)
    assert np.array_equal(plain.parts["cal"], plain.parts["val"]) and len(seen["val"]) == len(plain.parts["val"])
    assert plain.metrics["conformal"]["calibration"] == "calibrated on the validation records"
    monkeypatch.setattr(calibration, "watches_validation", lambda learner: True)
    held = train_frame(frame, tmp_path / "held", learner="logistic", cv=None, n_boot=50)
    parts = held.parts
    assert np.array_equal(parts["val"], plain.parts["val"]) and len(np.intersect1d(parts["stop"], parts["cal"])) == 0
    assert np.array_equal(np.sort(np.concatenate([parts["stop"], parts["cal"]])), parts["val"])
    assert len(seen["val"]) == len(parts["stop"]) < len(parts["val"])
    assert sum(len(v) for v in held.model_json["conformal"]["scores"].values()) == len(parts["cal"])
    assert "held out from early stopping" in held.metrics["conformal"]["calibration"]
    assert "held out from early stopping" in (tmp_path / "held" / "report.html").read_text()
    assert held.metrics["decision"] == plain.metrics["decision"]  # the decision rule still sees all of validation


# -- the option end to end -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cc")
    risk_frame(500, seed=6).to_csv(root / "risk.csv", index=False)
    return root


def test_the_option_round_trips_through_the_artifact_predict_json_and_the_service(folder, capsys):
    from fastapi.testclient import TestClient

    from medai.client import Client
    from medai.registry import Registry
    from medai.road import load_model
    from medai.serving.app import Settings, create_app

    data, out = folder / "risk.csv", folder / "m"
    code, stdout, err = run(["train", "--data", data, "--target", "outcome", "--id-column", "patient_id",
                             "--learner", "logistic", "--cv", "none", "--conformal", "class-conditional",
                             "--coverage", "0.8", "--out", out, "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["conformal"]["mode"] == "class-conditional" and set(metrics["conformal"]["per_class"]) == {"no",
                                                                                                           "yes"}
    model = load_model(out)
    assert model.conformal.mode == "class-conditional" and model.conformal.coverage == 0.8
    assert set(model.conformal.scores) == {"no", "yes"}
    records = pd.read_csv(data).drop(columns="outcome")
    expected = model.conformal.predict(model.scores(model.modality.inputs_from_records(
        records.drop(columns="patient_id").to_dict("records"), model)), positive_index=model.target.positive_index)
    code, stdout, err = run(["predict", out, data, "--json"], capsys)
    assert code == 0, err
    items = json.loads(stdout)
    sets = [[c for k, c in enumerate(model.target.classes) if row[k]] for row in expected["sets"]]
    assert [item["prediction_set"] for item in items] == sets and items[0]["coverage"] == 0.8
    assert any(len(s) != 1 for s in sets) and all(item["uncertain"] == (len(item["prediction_set"]) != 1)
                                                 for item in items)
    Registry().register(out, name="risk-cc")
    app = create_app(Settings(job_worker=False))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        client = Client(key=key, http=http)
        assert client.model("risk-cc")["conformal"] == {"coverage": 0.8, "mode": "class-conditional"}
        rows = json.loads(records.drop(columns="patient_id").head(20).to_json(orient="records"))  # NaN -> null
        answer = client.predict("risk-cc", rows)
        assert [p["prediction_set"] for p in answer["predictions"]] == sets[:20]


@pytest.mark.parametrize("extra,needle", [
    (["--conformal", "mondrian"], "--conformal must be one of standard, class-conditional, normalized, auto"),
    (["--conformal", "normalized"], "--conformal normalized applies to regression"),
    (["--conformal", "class-conditional", "--coverage", "0.99"], "class-conditional conformal sets need at least 99"),
])
def test_bad_values_of_the_option_stop_with_one_line_exit_2_and_write_nothing(folder, capsys, extra, needle):
    out = folder / "bad"
    code, _, err = run(["train", "--data", folder / "risk.csv", "--target", "outcome", "--id-column", "patient_id",
                        "--learner", "logistic", "--cv", "none", "--out", out, *extra], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and needle in errors[0], err  # after what the road stated, one error line
    assert "Traceback" not in err and not out.exists()
