"""The tabular learner keeps scikit-learn's contract and never lets preprocessing see held-out rows."""

import numpy as np
import pytest
from helpers import risk_frame
from sklearn.base import clone

from medai.data.tabular import coerce_features, encode_target, infer_schema
from medai.errors import IntegrityError, MedAIError
from medai.models.tabular import TabularClassifier, load_classifier, save_classifier


@pytest.fixture(scope="module")
def data():
    frame = risk_frame(300, seed=1)
    schema = infer_schema(frame, "outcome", id_column="patient_id")
    return coerce_features(frame, schema), encode_target(frame, schema), schema


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
    again = load_classifier(save_classifier(model), "test")
    assert np.array_equal(again.predict_proba(X), model.predict_proba(X))
    import skops.io as sio

    with pytest.raises(IntegrityError, match="not allowed"):
        load_classifier(sio.dumps({"x": __import__("fractions").Fraction(1, 3)}), "evil")


@pytest.mark.parametrize("learner,calibration", [
    ("logistic", None), ("logistic", "sigmoid"), ("logistic", "isotonic"),
    ("random-forest", None), ("lightgbm", None), ("lightgbm", "isotonic"),
])
def test_compiled_fast_path_equals_pipeline(data, learner, calibration):
    from medai.models.tabular import TabularModel

    X, y, schema = data
    model = TabularModel(TabularClassifier(learner=learner, calibration=calibration).fit(X, y), schema, 0.5, {})
    probe = X.iloc[:40].copy()
    probe.loc[probe.index[0], "smoker"] = "vaper"  # unseen category
    probe.loc[probe.index[1], "age"] = np.nan  # missing value (with a missing indicator)
    probe.loc[probe.index[2], "sex"] = np.nan
    records = [{k: (None if (isinstance(v, float) and np.isnan(v)) else v) for k, v in row.items()}
               for row in probe.to_dict("records")]
    expected = model.classifier.predict_proba(probe)[:, 1]
    assert np.allclose(model.predict_records(records), expected, atol=1e-10, rtol=0)
