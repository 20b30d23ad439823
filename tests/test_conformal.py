"""Conformal prediction checked against the textbook definitions (Vovk et al.; Angelopoulos & Bates 2021)."""

from __future__ import annotations

import numpy as np
import pytest

from medai.errors import MedAIError
from medai.evaluation.conformal import Conformal, _quantile, check_coverage, enough_records


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def classification(n, k=3, seed=0, weights=None):
    """Labels drawn from the model's own probabilities: a calibrated model, so exchangeability holds."""
    rng = np.random.default_rng(seed)
    proba = softmax(rng.normal(0, 1.5, (n, k)) + (np.log(weights) if weights is not None else 0))
    y = np.array([rng.choice(k, p=p) for p in proba])
    return y, proba


def textbook_sets(scores_cal, proba, coverage):
    """LAC: q = the ceil((n + 1) * coverage)-th smallest calibration score; a class is in the set when
    1 - p(class) <= q."""
    q = _quantile(np.asarray(scores_cal), coverage)
    return (1 - proba) <= q


def test_sets_equal_the_textbook_definition():
    y, proba = classification(400, seed=1)
    cal, test = slice(0, 200), slice(200, 400)
    model = Conformal.fit("multiclass", y[cal], proba[cal], coverage=0.9, mode="standard", classes=["a", "b", "c"])
    expected = textbook_sets(1 - proba[cal][np.arange(200), y[cal]], proba[test], 0.9)
    assert np.array_equal(model.predict(proba[test])["sets"], expected)


def test_binary_scores_are_the_positive_probability_in_any_class_order():
    rng = np.random.default_rng(2)
    p = rng.random(300)
    y_positive = (rng.random(300) < p).astype(int)
    for positive_index in (0, 1):
        y = np.where(y_positive == 1, positive_index, 1 - positive_index)  # class index, positive first or second
        model = Conformal.fit("binary", y[:150], p[:150], coverage=0.8, mode="standard", classes=["x", "y"],
                              positive_index=positive_index)
        sets = model.predict(p[150:], positive_index=positive_index)["sets"]
        proba = np.empty((150, 2))
        proba[:, positive_index], proba[:, 1 - positive_index] = p[150:], 1 - p[150:]
        cal_proba = np.empty((150, 2))
        cal_proba[:, positive_index], cal_proba[:, 1 - positive_index] = p[:150], 1 - p[:150]
        scores = 1 - cal_proba[np.arange(150), y[:150]]
        assert np.array_equal(sets, textbook_sets(scores, proba, 0.8))


def test_marginal_coverage_holds_over_repetitions():
    covered = []
    for seed in range(60):
        y, proba = classification(400, seed=seed)
        model = Conformal.fit("multiclass", y[:200], proba[:200], coverage=0.9, mode="standard",
                              classes=["a", "b", "c"])
        sets = model.predict(proba[200:])["sets"]
        covered.append(sets[np.arange(200), y[200:]].mean())
    # E[coverage] lies in [0.9, 0.9 + 1/(n + 1)] for exchangeable data
    assert 0.885 <= np.mean(covered) <= 0.92


def test_class_conditional_sets_cover_a_rare_class():
    y, proba = classification(6000, k=2, seed=3, weights=np.array([0.93, 0.07]))
    cal, test = slice(0, 3000), slice(3000, 6000)
    rare = y[test] == 1
    for mode in ("standard", "class-conditional"):
        model = Conformal.fit("multiclass", y[cal], proba[cal], coverage=0.9, mode=mode, classes=["common", "rare"])
        sets = model.predict(proba[test])["sets"]
        coverage_rare = sets[np.arange(3000), y[test]][rare].mean()
        if mode == "class-conditional":
            assert coverage_rare >= 0.86
        else:
            marginal_rare = coverage_rare
    assert marginal_rare < coverage_rare  # the marginal guarantee says nothing about the rare class


def test_regression_intervals_are_the_textbook_quantile_and_cover():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, 4000)
    y = 2 * x + rng.normal(0, 0.3, 4000)
    pred = 2 * x
    model = Conformal.fit("regression", y[:1000], pred[:1000], coverage=0.9, mode="standard", classes=[])
    out = model.predict(pred[1000:])
    q = _quantile(np.abs(y[:1000] - pred[:1000]), 0.9)
    assert np.allclose(out["high"] - pred[1000:], q) and np.allclose(pred[1000:] - out["low"], q)
    assert 0.88 <= ((out["low"] <= y[1000:]) & (y[1000:] <= out["high"])).mean() <= 0.93


def test_normalized_intervals_adapt_to_difficulty_and_auto_picks_them_when_narrower():
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, 3000)
    sigma = 0.05 + x  # noise grows with x
    y = x + rng.normal(0, 1, 3000) * sigma
    pred = x
    auto = Conformal.fit("regression", y[:1000], pred[:1000], coverage=0.9, mode="auto", classes=[],
                         sigma=sigma[:1000])
    standard = Conformal.fit("regression", y[:1000], pred[:1000], coverage=0.9, mode="standard", classes=[])
    assert auto.mode == "normalized" and "normalized" in auto.choice
    n_out = auto.predict(pred[1000:], sigma=sigma[1000:])
    s_out = standard.predict(pred[1000:])
    assert np.mean(n_out["high"] - n_out["low"]) < np.mean(s_out["high"] - s_out["low"])
    easy = x[1000:] < 0.2
    assert ((n_out["low"] <= y[1000:]) & (y[1000:] <= n_out["high"]))[easy].mean() >= 0.85
    constant = Conformal.fit("regression", y[:1000], pred[:1000], coverage=0.9, mode="auto", classes=[],
                             sigma=np.ones(1000))
    assert constant.mode == "standard"  # a useless difficulty estimate is not kept


def test_multilabel_sets_per_label_and_evaluation():
    rng = np.random.default_rng(6)
    p = rng.random((600, 2))
    y = (rng.random((600, 2)) < p).astype(float)
    y[rng.random(600) < 0.1, 1] = np.nan  # unknown labels are skipped
    model = Conformal.fit("multilabel", y[:300], p[:300], coverage=0.9, mode="standard", classes=["a", "b"])
    sets = model.predict(p[300:])["sets"]
    assert sets.shape == (300, 2, 2)
    result = model.evaluate(y[300:], p[300:], n_boot=100)
    assert 0.84 <= result["coverage"]["value"] <= 0.96 and 1 <= result["mean_set_size"]["value"] <= 2


def test_evaluation_report_and_round_trip():
    y, proba = classification(600, seed=7)
    model = Conformal.fit("multiclass", y[:300], proba[:300], coverage=0.8, mode="class-conditional",
                          classes=["a", "b", "c"])
    result = model.evaluate(y[300:], proba[300:], n_boot=100)
    assert set(result) >= {"nominal", "coverage", "mean_set_size", "singletons", "empty", "per_class", "mode"}
    assert result["coverage"]["ci_low"] <= result["coverage"]["value"] <= result["coverage"]["ci_high"]
    again = Conformal.from_json(model.to_json())
    assert np.array_equal(again.predict(proba[300:])["sets"], model.predict(proba[300:])["sets"])


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, "0.9"])
def test_coverage_must_lie_strictly_between_0_and_1(value):
    with pytest.raises(MedAIError, match="--coverage"):
        check_coverage(value)


def test_too_few_calibration_records_are_refused():
    assert not enough_records(8, 0.9) and enough_records(9, 0.9)
    with pytest.raises(MedAIError, match="too few"):
        Conformal.fit("regression", np.zeros(5), np.zeros(5), coverage=0.9, mode="standard", classes=[])
    with pytest.raises(MedAIError, match="applies to classifiers"):
        Conformal.fit("regression", np.zeros(50), np.zeros(50), coverage=0.9, mode="class-conditional", classes=[])
