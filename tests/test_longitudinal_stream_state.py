"""What makes a stream's risk update cheap, and that it changes no answer: the numpy summaries of a few stays equal
the polars ones (ties, gaps, derived variables), a stay's features do not depend on the stays scored with it, the
networks score only the steps they need, and the streams' cache of observations (read incrementally from the
database) gives the same risks after a restart, when another worker appends to the stream, and after a batch
that failed - on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from test_cli import run
from test_longitudinal import synthetic_cohort

from medai.modalities.longitudinal import derived, features, small
from medai.modalities.longitudinal.stays import Stays

VARIABLES = ("Age", "BUN", "Creatinine", "DiasABP", "FiO2", "GCS", "HR", "MAP", "MechVent", "NIDiasABP", "NIMAP",
             "NISysABP", "PaO2", "SysABP", "Temp", "Urine")


def icu_stays(n: int, seed: int) -> Stays:
    """Stays with the PhysioNet variables the derived series need, repeated times (ties within and across
    variables, line and cuff pressures at the same and at different times) and stays without some variables."""
    rng = np.random.default_rng(seed)
    stay, time, variable, value = [], [], [], []

    def add(i, t, v, x):
        stay.append(f"s{i}")
        time.append(t)
        variable.append(v)
        value.append(x)

    for i in range(n):
        add(i, 0.0, "Age", float(rng.integers(20, 90)))
        times = np.round(np.sort(rng.uniform(0, 48, rng.integers(5, 60))), 1)
        for t in times:
            add(i, t, "HR", rng.normal(90, 20))
            if rng.random() < 0.3:
                add(i, t, "HR", rng.normal(90, 20))  # a second value at the same time
            for line, cuff in (("SysABP", "NISysABP"), ("DiasABP", "NIDiasABP"), ("MAP", "NIMAP")):
                if i % 4 and rng.random() < 0.6:
                    add(i, t, line, rng.normal(110, 25))
                    if rng.random() < 0.2:
                        add(i, t, line, rng.normal(110, 25))
                if rng.random() < 0.5:
                    add(i, t, cuff, rng.normal(115, 25))
            if rng.random() < 0.3:
                add(i, t, "Temp", rng.normal(37, 1))
            if rng.random() < 0.2:
                add(i, t, "Urine", rng.exponential(80))
        for t in np.round(rng.uniform(0, 48, rng.integers(0, 8)), 1):
            add(i, t, "PaO2", rng.normal(100, 30))
            add(i, t if rng.random() < 0.5 else max(0.0, t - 1.5), "FiO2", rng.choice([0.4, 0.5, 1.0]))
            if rng.random() < 0.3:
                add(i, t, "FiO2", 0.6)
            add(i, t, "BUN", rng.normal(25, 10))
            for _ in range(rng.integers(0, 3)):
                add(i, t, "Creatinine", rng.uniform(0.5, 3))
            if rng.random() < 0.2:
                add(i, t, "MechVent", 1.0)
        if i % 5 == 0:
            add(i, 3.0, "GCS", 15.0)
    return Stays.from_long(np.array(stay), np.array(time), np.array(variable, dtype=object), np.array(value),
                           variables=VARIABLES)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


@pytest.mark.parametrize("hours", [2.0, 12.0, 24.0, 48.0])
def test_numpy_summaries_of_a_few_stays_equal_polars_exactly(hours):
    stays = icu_stays(3 * small.SMALL, seed=int(hours)).until(hours)
    assert len(stays) > small.SMALL  # so the library functions take the polars path
    batch = derived.with_derived(stays)
    for stats in (features.STATS, features.EXTENDED):
        polars_features = features.summarise(batch, 12.0, stats)
        for i in range(len(stays)):
            one = small.with_derived(stays.take([i]))
            reference = batch.take([i])
            assert one.variables == reference.variables
            assert np.array_equal(one.time, reference.time) and np.array_equal(one.var, reference.var)
            assert np.array_equal(one.value, reference.value), f"stay {i}: derived values differ"
            assert same(small.summarise(one, 12.0, stats), polars_features[i:i + 1]), f"stay {i}: features differ"
            assert same(derived.saps(one), derived.saps(reference))


def test_a_stays_features_do_not_depend_on_the_stays_scored_with_it():
    stays = icu_stays(4 * small.SMALL, seed=7).until(30.0)
    whole = features.summarise(derived.with_derived(stays), 12.0, features.EXTENDED)
    reordered = np.arange(len(stays))[::-1]
    backwards = features.summarise(derived.with_derived(stays.take(reordered)), 12.0, features.EXTENDED)
    assert same(whole, backwards[::-1])
    for i in (0, 5, len(stays) - 1):  # one stay alone (the numpy path) = the same stay in a batch (polars)
        assert same(features.summarise(derived.with_derived(stays.take([i])), 12.0, features.EXTENDED), whole[i:i + 1])


def test_numpy_summaries_handle_empty_stays_and_reject_unknown_statistics():
    stays = Stays.from_long(np.array(["a"]), np.array([1.0]), np.array(["HR"]), np.array([80.0]),
                            ids=np.array(["a", "b"]), horizon=5.0, variables=("HR", "MAP"))
    out = small.summarise(stays, 12.0, features.EXTENDED)
    k = len(features.EXTENDED)
    assert out[1, k * 2:].tolist() == [5.0, 0.0] and np.isnan(out[1, 0])  # empty stay: NaN, counts 0
    assert out[0, features.EXTENDED.index("count")] == 1 and np.isnan(out[0, features.EXTENDED.index("std")])
    assert out[0, features.EXTENDED.index("hours_since_last")] == 4.0
    with pytest.raises(ValueError, match="unknown summary statistic"):
        small.summarise(stays, 12.0, ("first", "median"))


# -- the streams' cache --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An ensemble (LightGBM + GRU-D, 1 epoch) trained on a synthetic cohort, and the cohort."""
    from medai.road import load_model

    root = tmp_path_factory.mktemp("stream-state")
    events, labels = synthetic_cohort(80, seed=5)
    events.to_csv(root / "events.csv", index=False)
    labels.to_csv(root / "labels.csv", index=False)
    capsys = _Quiet()
    code, _, err = run(["train", "--data", root / "events.csv", "--labels", root / "labels.csv", "--target", "died",
                        "--learner", "ensemble", "--epochs", "1", "--window-hours", "48", "--out", root / "m",
                        "--cv", "none", "--no-register"], capsys)
    assert code == 0, err
    return load_model(root / "m"), events


class _Quiet:
    """capsys for a module-scoped fixture: the CLI's output is not needed."""

    def readouterr(self):
        return type("Captured", (), {"out": "", "err": ""})()


class _State:
    """What :class:`Streams` needs of the service's state: the record and the loaded model."""

    def __init__(self, model):
        self.model = model

    def record(self, name, version=None):
        return type("Record", (), {"name": name, "version": 1})()

    def load_model(self, record):
        return self.model


def _batches(events, stay: str):
    from medai.modalities.longitudinal.streams import ObservationBatch

    rows = events[events.stay_id == stay]
    out = []
    for h in range(1, 49):
        batch = rows[(rows.time > h - 1) & (rows.time <= h)] if h > 1 else rows[rows.time <= 1]
        if len(batch):
            out.append(ObservationBatch(batch_id=f"b{h}", model="m", hour=float(h), observations=[
                {"time": float(r.time), "variable": r.variable, "value": float(r.value)} for r in batch.itertuples()]))
    return out


def _offline(model, events, stay: str, hours) -> np.ndarray:
    """The offline replay's risks of one stay at ``hours`` (with the other stays in the same batch)."""
    from medai.modalities.longitudinal.early_warning import scores_at

    stays = Stays.from_long(events.stay_id.to_numpy(), events.time.to_numpy(), events.variable.to_numpy(),
                            events.value.to_numpy(), variables=tuple(model.input_schema["variables"]))
    position = list(stays.ids).index(stay)
    return np.array([scores_at(model, stays.take([position, *range(min(12, len(stays)))]), h)[0] for h in hours])


def test_stream_cache_restart_another_worker_and_failed_batches_give_the_offline_risks(trained, database_url,
                                                                                         monkeypatch):
    from medai.modalities.longitudinal import streams as module
    from medai.modalities.longitudinal.streams import Streams

    model, events = trained
    stay = "s3"
    batches = _batches(events, stay)
    assert len(batches) >= 8
    expected = _offline(model, events, stay, [b.hour for b in batches])
    state = _State(model)
    first, other = Streams(database_url), Streams(database_url)  # two workers on one database
    answers = [first.post(state, "bed-1", b) for b in batches[:3]]
    assert first._cache["bed-1"].count == sum(len(b.observations) for b in batches[:3])
    answers.append(other.post(state, "bed-1", batches[3]))  # another worker appends: it reads the stream whole
    answers.append(first.post(state, "bed-1", batches[4]))  # this one's cache is behind: the count tells it
    calls = {"n": 0}
    real = module.score

    def failing(*args, **kwargs):
        calls["n"] += 1
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(module, "score", failing)
    with pytest.raises(RuntimeError):
        first.post(state, "bed-1", batches[5])
    monkeypatch.setattr(module, "score", real)
    assert calls["n"] == 1 and "bed-1" not in first._cache  # the failed batch: rolled back, cache dropped
    restarted = Streams(database_url)  # a restart: an empty cache
    answers += [restarted.post(state, "bed-1", b) for b in batches[5:]]
    assert [a["replayed"] for a in answers] == [False] * len(batches)
    np.testing.assert_allclose([a["risk"] for a in answers], expected, rtol=0, atol=1e-6)
    again = restarted.post(state, "bed-1", batches[2])  # idempotent by batch id, whichever worker stored it
    assert again["replayed"] and again["risk"] == answers[2]["risk"]
    stored = restarted.get("bed-1")
    assert stored["observations"] == sum(len(b.observations) for b in batches)  # nothing lost, nothing doubled
    assert [p["risk"] for p in stored["trajectory"]] == [a["risk"] for a in answers]
    # the cache holds what the database holds, in the order stored
    cached = restarted._cache["bed-1"]
    fresh = Streams(database_url)
    with fresh.sessions() as session:
        assert fresh._usable(session, "bed-1") == cached


def test_stream_cache_is_bounded(trained, tmp_path):
    from medai.modalities.longitudinal.streams import Streams

    model, events = trained
    streams = Streams(f"sqlite:///{tmp_path / 'db.sqlite'}", cache_size=2)
    state = _State(model)
    for name in ("a", "b", "c"):
        streams.post(state, name, _batches(events, "s1")[0])
    assert list(streams._cache) == ["b", "c"]
    answer = streams.post(state, "a", _batches(events, "s1")[1])  # read whole again: same answer as without cache
    assert answer["risk"] == pytest.approx(_offline(model, events, "s1", [answer["hour"]])[0], abs=1e-6)


def test_networks_score_only_the_steps_they_need(trained):
    model, events = trained
    network = model.learner.network_
    stays = Stays.from_long(events.stay_id.to_numpy(), events.time.to_numpy(), events.variable.to_numpy(),
                            events.value.to_numpy(), variables=network.variables_)
    early = stays.until(5.0)
    g = network._grid(early)
    import torch

    with torch.no_grad():  # the whole window, then the output at each stay's step
        logits = network.network_(*network._tensors(g, np.arange(len(early))))
        full = torch.softmax(logits[torch.arange(len(early)), torch.from_numpy(g["step"])], dim=1).numpy()
    np.testing.assert_allclose(network.predict_proba(early), full, rtol=0, atol=1e-6)
