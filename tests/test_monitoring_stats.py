"""The statistics and summaries of monitoring: PSI, binned KS, chi-squared, Benjamini-Hochberg, MMD, the reference
of a column, sliding windows, settings and the keyed record ids - each against scipy or a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from medai.errors import MedAIError
from medai.monitoring import stats
from medai.monitoring.analysis import _windows
from medai.monitoring.reference import (
    bin_counts,
    column_reference,
    dense,
    embedding_reference,
    pool_pixels,
    prediction_frame,
    project,
)
from medai.monitoring.store import MonitorSettings, check_record_ids, record_key


def _counts(spec, values):
    sparse, missing = bin_counts(spec, values)
    return dense(sparse, len(spec["counts"])), missing


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift():
    ref = np.array([10, 20, 30, 40])
    assert stats.psi(ref, ref * 3) == pytest.approx(0.0, abs=1e-12)
    r, w = ref / ref.sum(), np.array([40, 30, 20, 10]) / 100
    assert stats.psi(ref, [40, 30, 20, 10]) == pytest.approx(np.sum((w - r) * np.log(w / r)))
    assert stats.psi(ref, [40, 30, 20, 10]) > stats.psi(ref, [15, 20, 30, 35]) > 0


def test_binned_ks_matches_scipy_on_the_reference_percentiles():
    rng = np.random.default_rng(0)
    train = pd.Series(rng.normal(size=4000))
    spec = column_reference("x", train)
    assert spec["type"] == "numeric" and len(spec["edges"]) == 99 and sum(spec["counts"]) == 4000
    window = rng.normal(0.3, 1, 300)
    counts, missing = _counts(spec, window)
    d, p = stats.ks_binned(np.asarray(spec["counts"]), counts)
    exact = sps.ks_2samp(train, window)
    assert missing == 0 and d == pytest.approx(exact.statistic, abs=0.02)
    assert p < 1e-3 and exact.pvalue < 1e-3


def test_binned_ks_false_alarm_rate_under_no_shift_is_at_most_the_level():
    rng = np.random.default_rng(1)
    spec = column_reference("x", pd.Series(rng.gamma(2.0, size=3000)))
    ref = np.asarray(spec["counts"])
    p_values = [stats.ks_binned(ref, _counts(spec, rng.gamma(2.0, size=200))[0])[1] for _ in range(300)]
    assert np.mean(np.asarray(p_values) < 0.05) <= 0.07


def test_categorical_columns_chi_squared_and_missing_values():
    train = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20 + [None] * 10)
    spec = column_reference("c", train)
    assert spec["type"] == "categorical" and spec["categories"] == ["a", "b", "c"] and spec["missing"] == 10
    counts, missing = _counts(spec, ["a", "b", "zzz", None, None])
    assert counts.tolist() == [1, 1, 0, 1] and missing == 2  # unseen category -> the (other) bin
    same = stats.chi2_counts(np.append(spec["counts"], spec["missing"]), [50, 30, 20, 0, 10])
    assert same[1] == pytest.approx(1.0)
    table = np.array([[50, 30, 20, 10], [10, 30, 60, 10]])
    assert stats.chi2_counts(table[0], table[1])[1] == pytest.approx(sps.chi2_contingency(table, correction=False)
                                                                     .pvalue)
    # a whole-number column with few values is categorical; 1.0 and 1 are the same category
    binary = column_reference("sex", pd.Series([0.0, 1.0] * 40))
    assert binary["type"] == "categorical" and set(binary["categories"]) == {"0", "1"}
    counts = _counts(binary, [1, 1.0, 0])[0]
    assert counts[binary["categories"].index("1")] == 2 and counts[binary["categories"].index("0")] == 1


def test_benjamini_hochberg_is_scipys_and_keeps_nan():
    p = [0.001, 0.02, 0.04, float("nan"), 0.5]
    adjusted = stats.benjamini_hochberg(p)
    expected = sps.false_discovery_control([0.001, 0.02, 0.04, 0.5])
    assert np.isnan(adjusted[3]) and np.allclose(adjusted[[0, 1, 2, 4]], expected)


def test_mmd_finds_a_shift_in_embeddings_and_not_in_the_same_distribution():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(400, 40))
    spec = embedding_reference(Z, seed=0)
    assert spec["dims"] == 40 and len(spec["sample"]) == 300 and len(spec["sample"][0]) == 16
    sample = np.asarray(spec["sample"])
    same = project(spec, rng.normal(size=(200, 40)))
    moved = project(spec, rng.normal(size=(200, 40)) + 0.4)
    assert stats.mmd_test(sample, same, spec["bandwidth"], permutations=100)[1] > 0.05
    assert stats.mmd_test(sample, moved, spec["bandwidth"], permutations=100)[1] < 0.02
    with pytest.raises(ValueError, match="dimensions"):
        project(spec, rng.normal(size=(5, 39)))


def test_pixels_pool_to_eight_cells_per_axis():
    X = np.zeros((3, 1, 28, 28))
    X[:, :, :14] = 1.0
    pooled = pool_pixels(X)
    assert pooled.shape == (3, 64) and pooled[:, :32].mean() == pytest.approx(1.0)


def test_prediction_summaries_per_kind():
    from medai.tasks.kinds import TargetSpec

    binary = TargetSpec(kind="binary", column="y", classes=["no", "yes"], positive_label="yes")
    assert list(prediction_frame(np.array([0.1, 0.9]), binary).columns) == ["p(yes)"]
    multi = TargetSpec(kind="multiclass", column="y", classes=["a", "b", "c"])
    frame = prediction_frame(np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]]), multi)
    assert frame["predicted class"].tolist() == ["b", "a"]
    reg = TargetSpec(kind="regression", column="hba1c", classes=[])
    assert list(prediction_frame(np.array([5.0, 6.0]), reg).columns) == ["predicted hba1c"]


def test_sliding_windows_end_at_the_newest_batch():
    sizes = [50] * 20  # 1000 records
    spans = _windows(sizes, window=200, stride=100, min_window=50)
    assert spans[-1] == (16, 20)  # the last window holds the newest 200 records
    assert all(sum(sizes[i:j]) <= 200 for i, j in spans)
    assert len(spans) == 10
    assert _windows([], 100, 50, 10) == []
    assert _windows([500], 100, 50, 10) == [(0, 1)]  # a batch larger than a window is one window


def test_settings_are_checked_and_record_ids_are_keyed():
    with pytest.raises(MedAIError, match="fdr"):
        MonitorSettings(fdr=1.5)
    with pytest.raises(MedAIError, match="unknown monitoring setting 'colour'"):
        MonitorSettings.from_json({"colour": 1})
    with pytest.raises(MedAIError, match="webhook"):
        MonitorSettings(webhook="ftp://x")
    assert MonitorSettings(window=300).stride == 150
    with pytest.raises(MedAIError, match="expected one id per record"):
        check_record_ids(["a"], 2)
    with pytest.raises(MedAIError, match=r"record_ids\[1\]"):
        check_record_ids(["a", " "], 2)
    key = record_key(b"k" * 32, "m", "MRN-1")
    assert len(key) == 64 and "MRN" not in key
    assert key == record_key(b"k" * 32, "m", " MRN-1 ") != record_key(b"k" * 32, "other", "MRN-1")
    assert key != record_key(b"j" * 32, "m", "MRN-1")


class _ArrayModality:
    """Images as arrays, a learner with no representation of its own (the imaging modality's case)."""

    def embed(self, learner, X):
        return None


def test_reference_for_multiclass_and_multilabel_image_models():
    from medai.monitoring.reference import build_reference
    from medai.tasks.kinds import TargetSpec

    rng = np.random.default_rng(3)
    images = rng.random((60, 1, 16, 16)).astype(np.float32)
    multi = TargetSpec(kind="multiclass", column="y", classes=["a", "b", "c"])
    scores = rng.dirichlet([1, 1, 1], size=60)
    ref = build_reference(_ArrayModality(), object(), images, images[:40], scores[:40], multi)
    assert ref["features"] == [] and ref["predictions"][0]["type"] == "categorical"
    assert ref["embedding"]["dims"] == 64  # pooled 8x8 intensities, projected to 16
    assert len(ref["embedding"]["sample"]) == 40 and len(ref["embedding"]["sample"][0]) == 16
    labels = TargetSpec(kind="multilabel", column="y", classes=["x", "z"])
    ref = build_reference(_ArrayModality(), object(), images, images[:40], rng.random((40, 2)), labels)
    assert [p["name"] for p in ref["predictions"]] == ["p(x)", "p(z)"]


def test_the_recorder_summarises_a_second_of_requests_in_one_pass():
    from medai.monitoring.recorder import Observation, combine, merge_summaries

    a = Observation("m", 1, None, None, [{"x": 1}], np.array([0.1]), [{}], None)
    b = Observation("m", 1, None, None, [{"x": 2}, {"x": 3}], np.array([0.2, 0.3]), [{}, {}], ["i", "j"])
    (merged,) = combine([a, b])
    assert merged.records == [{"x": 1}, {"x": 2}, {"x": 3}] and merged.record_ids == [None, "i", "j"]
    assert merged.scores.tolist() == [0.1, 0.2, 0.3] and len(merged.items) == 3
    images = [Observation("m", 1, None, np.zeros((n, 1, 4, 4)), None, np.zeros(n), [{}] * n, None) for n in (1, 2)]
    assert combine(images)[0].X.shape == (3, 1, 4, 4)
    odd = [images[0], Observation("m", 1, None, np.zeros((1, 1, 5, 5)), None, np.zeros(1), [{}], None)]
    assert combine(odd) == odd  # shapes differ: summarised one by one
    total = merge_summaries({"features": {"x": {"c": {"1": 2}, "m": 1}}, "predictions": {}},
                            {"features": {"x": {"c": {"1": 1, "3": 4}, "m": 0}}, "predictions": {}})
    assert total["features"]["x"] == {"c": {"1": 3, "3": 4}, "m": 1}
