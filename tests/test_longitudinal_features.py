"""Longitudinal summaries: derived variables, SAPS-I, extended statistics, the LightGBM + GRU-D ensemble."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_longitudinal import synthetic_cohort

from medai.errors import MedAIError
from medai.modalities.longitudinal.derived import SAPS_NAMES, derived_names, saps, with_derived
from medai.modalities.longitudinal.features import EXTENDED, STATS, feature_names, summarise
from medai.modalities.longitudinal.learners import SummaryBoosting
from medai.modalities.longitudinal.stays import Stays


def small_stays() -> Stays:
    rows = [  # stay, hour, variable, value
        ("a", 0.0, "Age", 80), ("a", 1.0, "SysABP", 100), ("a", 1.0, "NISysABP", 130), ("a", 2.0, "NISysABP", 70),
        ("a", 1.0, "HR", 120), ("a", 2.0, "HR", 140), ("a", 0.5, "FiO2", 0.5), ("a", 3.0, "PaO2", 100),
        ("a", 4.0, "FiO2", 1.0), ("a", 5.0, "PaO2", 60), ("a", 6.0, "BUN", 40), ("a", 6.0, "Creatinine", 2),
        ("a", 7.0, "GCS", 8), ("a", 30.0, "GCS", 3), ("a", 1.0, "MechVent", 1), ("a", 2.0, "RespRate", 18),
        ("a", 3.0, "Urine", 100), ("a", 20.0, "Urine", 150), ("b", 3.0, "HR", 60), ("b", 3.0, "RespRate", 40),
    ]
    stay, time, variable, value = zip(*rows, strict=True)
    return Stays.from_long(np.array(stay), np.array(time), np.array(variable), np.array(value, dtype=float),
                           ids=np.array(["a", "b", "c"]), horizon=48.0)


def series(stays: Stays, stay: int, name: str) -> list[tuple[float, float]]:
    one = stays.take([stay])
    pick = one.var == one.variables.index(name)
    return [(float(t), round(float(x), 4)) for t, x in zip(one.time[pick], one.value[pick], strict=True)]


def test_derived_variables_merge_pressures_and_take_ratios_at_the_right_times():
    stays = small_stays()
    assert derived_names(("HR",)) == () and derived_names(("MAP", "HR")) == ()  # one source: no copy of it
    assert derived_names(("HR", "NISysABP", "SysABP")) == ("SysABP*", "ShockIndex")
    full = with_derived(stays)
    assert full.variables[:len(stays.variables)] == stays.variables
    assert set(full.variables) - set(stays.variables) == {"SysABP*", "PaO2/FiO2", "BUN/Creatinine", "ShockIndex"}
    assert series(full, 0, "SysABP*") == [(1.0, 100.0), (2.0, 70.0)]  # the arterial line wins at hour 1
    assert series(full, 0, "PaO2/FiO2") == [(3.0, 200.0), (5.0, 60.0)]  # FiO2 in force then: 0.5, then 1.0
    assert series(full, 0, "BUN/Creatinine") == [(6.0, 20.0)]
    assert series(full, 0, "ShockIndex") == [(1.0, 1.2), (2.0, 2.0)]
    assert len(full) == 3 and full.lengths[2] == 0 and np.array_equal(full.horizon, stays.horizon)
    assert np.all(np.diff(full.take([0]).time) >= 0)  # still sorted by time within a stay
    assert full.until(2.0).lengths.tolist() == [13, 0, 0]


def test_saps_takes_the_worst_points_of_the_first_24_hours():
    full = with_derived(small_stays())
    points = saps(full)
    column = {name: j for j, name in enumerate(SAPS_NAMES)}
    a, b, c = points
    assert a[column["SAPS-I:Age"]] == 4 and a[column["SAPS-I:HR"]] == 3  # 140/min: 3 points
    assert a[column["SAPS-I:SysABP*"]] == 2  # worst of 100 and 70
    assert a[column["SAPS-I:GCS"]] == 2  # GCS 8 in the first day; the 3 at hour 30 is too late
    assert a[column["SAPS-I:RespRate"]] == 3  # ventilated
    assert a[column["SAPS-I:Urine"]] == 3  # 0.25 L in 24 h
    assert a[column["SAPS-I:BUN"]] == 1 and np.isnan(a[column["SAPS-I:Temp"]])
    assert a[column["SAPS-I"]] == np.nansum(a[:-1]) == 4 + 3 + 2 + 2 + 3 + 3 + 1
    assert b[column["SAPS-I:RespRate"]] == 3 and b[column["SAPS-I:HR"]] == 2  # 40/min: 3; HR 60: 2
    assert np.isnan(c[:-1]).all() and c[-1] == 0  # nothing recorded
    cuff_only = Stays.from_long(np.array(["a"]), np.array([1.0]), np.array(["NISysABP"]), np.array([200.0]))
    assert saps(with_derived(cuff_only))[0, column["SAPS-I:SysABP*"]] == 4  # the one source there is


def test_extended_statistics_agree_with_a_direct_computation():
    stays = small_stays()
    F = summarise(stays, stats=EXTENDED)
    col = {n: i for i, n in enumerate(feature_names(stays.variables, EXTENDED))}
    assert F.shape[1] == len(stays.variables) * len(EXTENDED) + 2
    assert F[0, col["HR:std"]] == pytest.approx(np.std([120, 140], ddof=1))
    assert F[0, col["GCS:first24_min"]] == 8 and F[0, col["GCS:last24_min"]] == 3 and F[0, col["GCS:change"]] == -5
    assert F[0, col["GCS:last6_mean"]] != F[0, col["GCS:last6_mean"]]  # nothing in the last 6 h: NaN
    assert F[1, col["HR:count"]] == 1 and np.isnan(F[1, col["HR:std"]]) and F[2, col["HR:count"]] == 0
    basic = summarise(stays)
    assert basic.shape[1] == len(stays.variables) * len(STATS) + 2
    with pytest.raises(ValueError, match="unknown summary statistics"):
        summarise(stays, stats=("last", "median_of_medians"))


def test_summary_boosting_extended_and_basic_round_trip_and_cuts_within_the_window():
    events, labels = synthetic_cohort(160)
    stays = Stays.from_long(events.stay_id.to_numpy(), events.time.to_numpy(), events.variable.to_numpy(),
                            events.value.to_numpy(), ids=labels.stay_id.to_numpy(), horizon=24.0)
    y = labels.died.to_numpy()
    model = SummaryBoosting(n_estimators=30, augment_hours="12,24,36").fit(stays, y)
    assert model.cuts_ == [12.0]  # 24 and 36 would repeat the whole 24-hour stays
    assert len(model.feature_names_) == model.features(stays).shape[1]
    assert "SAPS-I" in model.feature_names_ and "HR:last24_max" in model.feature_names_
    files = model.to_files()
    again = SummaryBoosting.from_files(files["booster.txt"], files["summary_boosting.json"])
    assert np.allclose(again.predict_proba(stays), model.predict_proba(stays))
    basic = SummaryBoosting(n_estimators=30, summaries="basic").fit(stays, y)
    assert basic.features(stays).shape[1] == len(STATS) * len(stays.variables) + 2
    state = json.loads(basic.to_files()["summary_boosting.json"])
    del state["params"]["summaries"]  # a model saved before the option existed loads as basic
    legacy = SummaryBoosting.from_files(basic.to_files()["booster.txt"], json.dumps(state).encode())
    assert np.allclose(legacy.predict_proba(stays), basic.predict_proba(stays))
    with pytest.raises(MedAIError, match="summaries"):
        SummaryBoosting(summaries="fancy").fit(stays, y)


def test_ensemble_averages_its_members_and_round_trips(tmp_path):
    from medai.modalities import get_modality
    from medai.modalities.longitudinal.ensemble import AveragedLearners

    events, labels = synthetic_cohort(120)
    stays = Stays.from_long(events.stay_id.to_numpy(), events.time.to_numpy(), events.variable.to_numpy(),
                            events.value.to_numpy(), ids=labels.stay_id.to_numpy(), horizon=48.0)
    y = labels.died.to_numpy()
    model = AveragedLearners(weight=0.7, epochs=2).fit(stays.take(np.arange(90)), y[:90], stays.take(
        np.arange(90, 120)), y[90:])
    boosted, network = model.member_probabilities(stays)
    assert np.allclose(model.predict_proba(stays), 0.7 * boosted + 0.3 * network)
    assert not np.allclose(boosted, network)
    modality = get_modality("longitudinal")
    for name, data in modality.save_learner(model).items():
        (tmp_path / name).write_bytes(data)
    loaded = modality.load_learner(tmp_path, {})
    assert isinstance(loaded, AveragedLearners)
    assert np.allclose(loaded.predict_proba(stays.until(12.0)), model.predict_proba(stays.until(12.0)), atol=1e-6)
    assert "GRU-D" in modality.describe_learner(loaded, "ensemble")["name"]
    with pytest.raises(MedAIError, match="weight"):
        AveragedLearners(weight=1.5).fit(stays, y)


def test_robust_network_inputs_log_heavy_tails_clip_and_old_configs_load_as_standard():
    from medai.modalities.longitudinal.networks import CLIP, SequenceNetwork, grid, transform

    var = np.array([0, 1, 1])
    assert np.allclose(transform(var, np.array([5.0, 9.0, -1.0]), np.array([False, True])), [5.0, np.log(10), 0])
    stays = Stays.from_long(np.array(["a", "a", "b"]), np.array([0.5, 1.5, 0.5]), np.array(["x", "x", "x"]),
                            np.array([0.0, 1000.0, 1.0]), horizon=2.0)
    g = grid(stays, 2, 1.0, np.zeros(1, np.float32), np.ones(1, np.float32), None, CLIP)
    assert g["x"][0, 1, 0] == CLIP and g["m"][0, :, 0].tolist() == [1, 1]
    events, labels = synthetic_cohort(60)
    cohort = Stays.from_long(events.stay_id.to_numpy(), events.time.to_numpy(), events.variable.to_numpy(),
                             events.value.to_numpy(), ids=labels.stay_id.to_numpy(), horizon=48.0)
    cohort.value[cohort.var == cohort.variables.index("Lactate")] **= 3  # a heavy right tail
    y = labels.died.to_numpy()
    net = SequenceNetwork(epochs=1).fit(cohort, y)
    assert net.log_[cohort.variables.index("Lactate")] and not net.log_[cohort.variables.index("MAP")]
    files = net.to_files()
    config = json.loads(files["network.json"])
    del config["params"]["scaling"], config["log"]  # saved before robust scaling existed
    old = SequenceNetwork.from_files(files["network.safetensors"], json.dumps(config).encode())
    assert old.scaling == "standard" and not old.log_.any()
    again = SequenceNetwork.from_files(files["network.safetensors"], files["network.json"])
    assert np.allclose(again.predict_proba(cohort), net.predict_proba(cohort), atol=1e-6)
    with pytest.raises(MedAIError, match="scaling"):
        SequenceNetwork(scaling="minmax").fit(cohort, y)


def test_physionet_task_defaults_to_the_ensemble():
    from types import SimpleNamespace

    from medai.modalities import get_modality
    from medai.modalities.longitudinal.ensemble import AveragedLearners
    from medai.road.options import TrainOptions
    from medai.tasks import get_task

    task = get_task("physionet2012-mortality")
    assert task.default_learner == "ensemble"
    target = SimpleNamespace(kind="binary", classes=["0", "1"])
    learner = get_modality("longitudinal").make_learner(task.default_learner, target,
                                                        TrainOptions(seed=3, extra={"epochs": 7}), task, None)
    assert isinstance(learner, AveragedLearners) and learner.epochs == 7 and learner.seed == 3
    regression = SimpleNamespace(kind="regression", classes=[])
    with pytest.raises(MedAIError, match="needs lightgbm"):
        get_modality("longitudinal").make_learner("ensemble", regression, TrainOptions(), task, None)
