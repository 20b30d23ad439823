"""Metrics agree with scikit-learn on known inputs; thresholds and bootstrap behave as documented."""

import numpy as np
import pytest
from sklearn import metrics as skm

from medai.errors import MedAIError
from medai.evaluation.bootstrap import bootstrap_metrics
from medai.evaluation.evaluate import evaluate_binary, summarize_cv
from medai.evaluation.metrics import (
    auprc,
    auroc,
    binary_metrics,
    expected_calibration_error,
    multiclass_metrics,
)
from medai.evaluation.threshold import ThresholdRule, choose_threshold


@pytest.fixture(params=[0, 1, 2])
def scored(request):
    rng = np.random.default_rng(request.param)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    p = np.round(p, 2)  # ties, as real models produce
    return y, p


def test_ranking_metrics_match_sklearn(scored):
    y, p = scored
    assert auroc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert auprc(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)


def test_threshold_metrics_match_sklearn(scored):
    y, p = scored
    m = binary_metrics(y, p, threshold=0.5)
    pred = (p >= 0.5).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["ppv"] == pytest.approx(skm.precision_score(y, pred))
    assert m["npv"] == pytest.approx(tn / (tn + fn))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))


def test_known_values_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    assert auroc(y, p) == pytest.approx(0.75)
    m = binary_metrics(y, p, threshold=0.4)
    assert (m["sensitivity"], m["specificity"]) == (0.5, 0.5)


def test_ece_by_hand():
    # bin [0.2,0.3): p=0.25 x2, one positive -> |0.5-0.25| ; bin [0.9,1]: p=0.95 x2, both positive -> 0.05
    y = np.array([0, 1, 1, 1])
    p = np.array([0.25, 0.25, 0.95, 0.95])
    assert expected_calibration_error(y, p) == pytest.approx((2 * 0.25 + 2 * 0.05) / 4)
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == pytest.approx(0.0)


def test_multiclass_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + np.eye(3)[y] * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = multiclass_metrics(y, proba)
    assert m["auroc_macro"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(1)))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, proba.argmax(1), average="macro"))
    assert m["f1_micro"] == pytest.approx(skm.f1_score(y, proba.argmax(1), average="micro"))


def test_degenerate_inputs_give_nan_not_crash():
    assert np.isnan(auroc(np.ones(5, int), np.linspace(0, 1, 5)))
    assert np.isnan(binary_metrics(np.zeros(4, int), np.full(4, 0.9))["sensitivity"])


def test_youden_threshold_separates_perfectly():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    t = choose_threshold(y, p, ThresholdRule("youden"))
    assert 0.3 < t <= 0.6
    assert binary_metrics(y, p, t)["accuracy"] == 1.0


def test_target_sensitivity_threshold():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.25 * y + rng.random(500) * 0.75, 0, 1)
    t = choose_threshold(y, p, ThresholdRule.parse("sensitivity:0.9"))
    assert binary_metrics(y, p, t)["sensitivity"] >= 0.9


@pytest.mark.parametrize("text", ["median", "sensitivity:", "sensitivity:1.5", "fixed:x"])
def test_bad_threshold_rules(text):
    with pytest.raises(MedAIError):
        ThresholdRule.parse(text)


def test_bootstrap_ci_brackets_auroc_and_is_seeded(scored):
    y, p = scored
    a = evaluate_binary(y, p, 0.5, n_boot=200, seed=3)
    b = evaluate_binary(y, p, 0.5, n_boot=200, seed=3)
    assert a == b
    assert a["auroc"]["ci_low"] <= a["auroc"]["value"] <= a["auroc"]["ci_high"]
    assert a["auroc"]["ci_high"] - a["auroc"]["ci_low"] > 0.01


def test_bootstrap_keeps_both_classes_in_every_resample():
    y = np.array([0] * 50 + [1] * 2)
    p = np.linspace(0, 1, 52)
    out = bootstrap_metrics(lambda i: {"auroc": auroc(y[i], p[i])}, y, n_boot=100, seed=0)
    assert out["auroc"]["ci_low"] is not None


def test_cv_summary_uses_corrected_variance():
    folds = [{"auroc": v} for v in (0.8, 0.85, 0.9, 0.82, 0.88)]
    s = summarize_cv(folds, folds=5)["auroc"]
    assert s["mean"] == pytest.approx(0.85)
    naive_half = 2.776 * np.std([0.8, 0.85, 0.9, 0.82, 0.88], ddof=1) / np.sqrt(5)
    assert (s["ci_high"] - s["mean"]) > naive_half  # wider than the naive CI
