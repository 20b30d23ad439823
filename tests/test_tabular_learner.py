"""The tabular learner keeps scikit-learn's contract and never lets preprocessing see held-out rows."""

import numpy as np
import pandas as pd
import pytest
from helpers import risk_frame
from sklearn.base import clone

from medai.errors import IntegrityError, MedAIError
from medai.modalities.skops_io import dumps, loads
from medai.modalities.tabular.compiled import compile_learner, typed_arrays
from medai.modalities.tabular.learners import TabularClassifier, TabularMultilabel, TabularRegressor
from medai.modalities.tabular.schema import coerce_features, infer_schema

TRUSTED = ("medai.modalities.tabular.",)


@pytest.fixture(scope="module")
def data():
    frame = risk_frame(300, seed=1)
    schema = infer_schema(frame, ["outcome"], id_column="patient_id")
    return coerce_features(frame, schema), (frame["outcome"] == "yes").to_numpy().astype(int), schema


def other_targets(X: pd.DataFrame, seed: int = 0):
    """A 3-class grade, a continuous outcome and two labels with gaps, all learnable from X."""
    rng = np.random.default_rng(seed)
    risk = (X["age"] - 55) / 15 + np.where(X["smoker"] == "current", 1.0, 0.0) + rng.normal(0, 0.5, len(X))
    grade = np.digitize(risk, np.quantile(risk, [1 / 3, 2 / 3]))
    value = 3 * risk.to_numpy() + rng.normal(0, 1, len(X))
    labels = np.column_stack([(risk > 0).astype(float), (X["sex"] == "F").astype(float)])
    labels[rng.random(len(X)) < 0.1, 1] = np.nan
    return grade, value, labels


@pytest.mark.parametrize("learner", ["logistic", "random-forest", "lightgbm"])
def test_learner_protocol(data, learner):
    X, y, _ = data
    model = TabularClassifier(learner=learner, seed=0)
    assert model.get_params()["learner"] == learner
    assert not hasattr(model, "model_")  # the constructor learns nothing
    fitted = model.fit(X, y)
    assert fitted is model
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(1), 1)
    assert set(model.predict(X)) <= {0, 1}
    assert clone(model).get_params() == model.get_params()
    shap = model.shap_values(X.iloc[:7])
    assert shap.shape == (7, X.shape[1])


def test_linear_shap_sums_to_log_odds_difference(data):
    X, y, _ = data
    model = TabularClassifier(learner="logistic").fit(X, y)
    est = model.pipeline_.named_steps["model"]
    contributions = model.shap_values(X.iloc[:5]).sum(axis=1)
    logit = np.log(model.predict_proba(X.iloc[:5])[:, 1] / model.predict_proba(X.iloc[:5])[:, 0])
    base = est.intercept_[0] + est.coef_[0] @ model.background_mean_
    assert np.allclose(contributions, logit - base, atol=1e-6)


def test_auto_picks_the_best_cv_learner(data):
    X, y, _ = data
    model = TabularClassifier(learner="auto", seed=0).fit(X, y)
    assert set(model.selection_scores_) == {"logistic", "random-forest", "lightgbm"}
    assert model.chosen_learner_ == max(model.selection_scores_, key=model.selection_scores_.get)


def test_calibration_option(data):
    X, y, _ = data
    model = TabularClassifier(learner="random-forest", calibration="isotonic").fit(X, y)
    assert model.predict_proba(X).shape == (len(X), 2)
    assert model.shap_values(X.iloc[:3]).shape == (3, X.shape[1])
    with pytest.raises(MedAIError, match="calibration"):
        TabularClassifier(calibration="platt").fit(X, y)


def test_unknown_learner_and_one_class(data):
    X, y, _ = data
    with pytest.raises(MedAIError, match="unknown learner"):
        TabularClassifier(learner="svm").fit(X, y)
    with pytest.raises(MedAIError, match="two classes"):
        TabularClassifier(learner="logistic").fit(X, np.zeros(len(y)))


def test_preprocessing_is_fitted_on_training_rows_only(data):
    """Imputation medians and scaling means come from the rows given to fit, not from held-out rows."""
    X, y, _ = data
    train, held = X.iloc[:200], X.iloc[200:].copy()
    held["age"] = held["age"] + 1000  # a held-out shift that a leaking pipeline would absorb
    model = TabularClassifier(learner="logistic").fit(train, y[:200])
    num = model.pipeline_.named_steps["prep"].named_transformers_["num"]
    assert num.named_steps["impute"].statistics_[0] == pytest.approx(np.nanmedian(train["age"]))
    assert num.named_steps["scale"].mean_[0] == pytest.approx(train["age"].mean())
    before = model.predict_proba(X.iloc[:200])
    model.predict_proba(held)  # predicting must not refit anything
    assert np.array_equal(before, model.predict_proba(X.iloc[:200]))


def test_unseen_category_at_prediction_is_tolerated(data):
    X, y, _ = data
    model = TabularClassifier(learner="logistic").fit(X, y)
    odd = X.iloc[:3].copy()
    odd["smoker"] = "vaper"
    assert model.predict_proba(odd).shape == (3, 2)


def test_skops_round_trip_and_refusal(data):
    X, y, _ = data
    model = TabularClassifier(learner="lightgbm").fit(X, y)
    again = loads(dumps(model), "test", TRUSTED)
    assert np.array_equal(again.predict_proba(X), model.predict_proba(X))
    with pytest.raises(IntegrityError, match="not allowed"):
        loads(dumps({"x": __import__("fractions").Fraction(1, 3)}), "evil", TRUSTED)


@pytest.mark.parametrize("learner", ["logistic", "random-forest", "lightgbm", "auto"])
def test_multiclass_learners(data, learner):
    X, _, _ = data
    grade, _, _ = other_targets(X)
    model = TabularClassifier(learner=learner, seed=0, n_classes=3).fit(X, grade)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba.sum(1), 1)
    assert (proba.argmax(1) == grade).mean() > 0.55
    assert model.shap_values(X.iloc[:4], output=2).shape == (4, X.shape[1])


def test_a_class_missing_from_training_gets_probability_zero(data):
    X, _, _ = data
    grade, _, _ = other_targets(X)
    keep = grade != 1
    model = TabularClassifier(learner="logistic", n_classes=3).fit(X[keep], grade[keep])
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.all(proba[:, 1] == 0)


@pytest.mark.parametrize("learner", ["ridge", "random-forest", "lightgbm", "auto"])
def test_regressors(data, learner):
    X, _, _ = data
    _, value, _ = other_targets(X)
    model = TabularRegressor(learner=learner, seed=0).fit(X, value)
    pred = model.predict(X)
    assert pred.shape == (len(X),) and np.corrcoef(pred, value)[0, 1] > 0.8
    assert model.shap_values(X.iloc[:3]).shape == (3, X.shape[1])
    with pytest.raises(MedAIError, match="regression target; choose one of ridge"):
        TabularRegressor(learner="logistic").fit(X, value)


def test_multilabel_fits_each_label_on_its_known_records(data):
    X, _, _ = data
    _, _, labels = other_targets(X)
    model = TabularMultilabel(learner="logistic", seed=0).fit(X, labels)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    known = ~np.isnan(labels[:, 1])
    assert len(model.estimators_[1].pipeline_.named_steps["prep"].transform(X[known])) == known.sum()
    with pytest.raises(MedAIError, match="label 2 has a single value"):
        TabularMultilabel(learner="logistic").fit(X, np.column_stack([labels[:, 0], np.ones(len(X))]))


@pytest.mark.parametrize("kind,learner,calibration", [
    ("binary", "logistic", None), ("binary", "logistic", "sigmoid"), ("binary", "logistic", "isotonic"),
    ("binary", "random-forest", None), ("binary", "lightgbm", None), ("binary", "lightgbm", "isotonic"),
    ("multiclass", "logistic", None), ("multiclass", "random-forest", None), ("multiclass", "lightgbm", None),
    ("regression", "ridge", None), ("regression", "random-forest", None), ("regression", "lightgbm", None),
    ("multilabel", "logistic", None), ("multilabel", "lightgbm", None),
])
def test_compiled_fast_path_equals_pipeline(data, kind, learner, calibration):
    X, y, _ = data
    grade, value, labels = other_targets(X)
    if kind == "binary":
        model, output = TabularClassifier(learner=learner, calibration=calibration).fit(X, y), "p1"
    elif kind == "multiclass":
        model, output = TabularClassifier(learner=learner, n_classes=3).fit(X, grade), "proba"
    elif kind == "regression":
        model, output = TabularRegressor(learner=learner).fit(X, value), "predict"
    else:
        model, output = TabularMultilabel(learner=learner).fit(X, labels), "proba"
    probe = X.iloc[:40].copy()
    probe.loc[probe.index[0], "smoker"] = "vaper"  # unseen category
    probe.loc[probe.index[1], "age"] = np.nan  # missing value (with a missing indicator)
    probe.loc[probe.index[2], "sex"] = np.nan
    records = [{k: (None if (isinstance(v, float) and np.isnan(v)) else v) for k, v in row.items()}
               for row in probe.to_dict("records")]
    expected = {"p1": lambda: model.predict_proba(probe)[:, 1], "proba": lambda: model.predict_proba(probe),
                "predict": lambda: model.predict(probe)}[output]()
    compiled = compile_learner(model)
    assert np.allclose(compiled.scores(*typed_arrays(compiled, records)), expected, atol=1e-10, rtol=0)


def test_calibrated_multiclass_has_no_fast_path(data):
    X, _, _ = data
    grade, _, _ = other_targets(X)
    assert compile_learner(TabularClassifier(learner="logistic", calibration="sigmoid", n_classes=3)
                           .fit(X, grade)) is None
