"""Visit histories: PyHealth 1.1.3's MIMIC-IV tasks on the demo (sample counts), patient-level splits, the visit
learners (binary, multiclass, multilabel; save/load), MEDS-style event tables, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from conftest import require_data

from medai.errors import MedAIError
from medai.modalities.longitudinal.visit_tasks import VisitTask, build_samples

DEMO = "ehr/mimic-iv-clinical-database-demo-2.2"

# PyHealth 1.1.3 on the MIMIC-IV demo 2.2 (MIMIC4Dataset over the un-gzipped hosp tables diagnoses_icd,
# procedures_icd, prescriptions, no code mapping; dataset.set_task(fn)), as printed by
# `/work/pyhealth-venv/bin/python benchmarks/ehr_visits_pyhealth.py counts --root DEMO` in PyHealth's own venv
# (2026-12-01): samples, patients, label counts, and a digest of the sorted visit_id|patient_id|label lines.
PYHEALTH = {
    "mimic4demo-mortality": (104, 42, {0: 97, 1: 7}, "719294b75e2a21fe"),  # mortality_prediction_mimic4_fn
    "readmission-15d": (104, 42, {0: 52, 1: 52}, "dfc6a577455fbdab"),  # readmission_..._fn, time_window=15
    "mimic4demo-readmission": (104, 42, {0: 45, 1: 59}, "fdbd9d6420120ebf"),  # the same, time_window=30
    "mimic4demo-los": (186, 92, {0: 6, 1: 8, 2: 23, 3: 13, 4: 19, 5: 19, 6: 12, 7: 14, 8: 47, 9: 25},
                       "4e45df956e283ebf"),  # length_of_stay_prediction_mimic4_fn
    # next_diagnoses_fn of benchmarks/ehr_visits_pyhealth.py (PyHealth 1.1.3 ships none): 809 distinct codes
    "mimic4demo-next-diagnoses": (104, 42, {"distinct": 809, "in 10 or more": 19}, "db0faeba7a47a48b"),
}


def _digest(samples) -> str:
    import hashlib

    lines = sorted(f"{v}|{p}|{';'.join(sorted(label)) if isinstance(label, list) else label}"
                   for v, p, label in zip(samples["visit_id"].to_list(), samples["subject_id"].to_list(),
                                          samples["label"].to_list(), strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def demo_tables():
    from medai.modalities.longitudinal.visits import mimic_visits

    return mimic_visits(require_data(DEMO))


def _dataset(name: str):
    from medai.modalities import get_modality
    from medai.road.options import TrainOptions
    from medai.tasks import get_task

    require_data(DEMO)
    return get_modality("longitudinal").load_task_data(get_task(name), TrainOptions())


@pytest.mark.parametrize("name", sorted(PYHEALTH))
def test_samples_equal_pyhealths(name, demo_tables):
    from collections import Counter

    from medai.modalities.longitudinal.visit_data import VISIT_TASKS

    spec = VisitTask("readmission", window_days=15) if name == "readmission-15d" else VISIT_TASKS[name][0]
    samples, histories = build_samples(*demo_tables, spec)
    n, patients, labels, digest = PYHEALTH[name]
    assert len(samples) == len(histories) == n and samples["subject_id"].n_unique() == patients
    if spec.label == "next-diagnoses":
        counts = Counter(c for codes in samples["label"].to_list() for c in codes)
        assert {"distinct": len(counts), "in 10 or more": sum(v >= 10 for v in counts.values())} == labels
    else:
        assert dict(samples["label"].value_counts().iter_rows()) == labels
    assert _digest(samples) == digest  # the same visits with the same labels
    assert all(h[-1]["conditions"] and h[-1]["procedures"] and h[-1]["drugs"] for h in histories.visits)


def test_chronological_order_changes_what_next_means(demo_tables):
    """PyHealth 1.1.3 orders visits by hadm_id; in time order the next admission is the next one in time."""
    pyhealth, _ = build_samples(*demo_tables, VisitTask("readmission", window_days=30))
    chronological, _ = build_samples(*demo_tables, VisitTask("readmission", window_days=30, order="time"))
    assert len(chronological) == 108 and dict(chronological["label"].value_counts().iter_rows()) == {0: 75, 1: 33}
    assert len(pyhealth) == 104


def test_histories_end_with_the_index_visit_and_are_in_time_order(demo_tables):
    visits, events = demo_tables
    samples, histories = build_samples(visits, events, VisitTask("mortality"))
    start = dict(zip(visits["visit_id"].to_list(), visits["start"].to_list(), strict=True))
    for k, (visit_id, subject) in enumerate(zip(histories.ids, histories.subjects, strict=True)):
        earlier = visits.filter((pl.col("subject_id") == subject) & (pl.col("start") <= start[visit_id]))
        assert len(histories.visits[k]) == len(earlier)  # never a visit that started later
    codes = set(events.filter(pl.col("visit_id") == histories.ids[0])["code"].to_list())
    assert set().union(*histories.visits[0][-1].values()) == codes


def test_patient_level_splits_keep_each_patient_on_one_side():
    from medai.data.splits import train_val_test_split

    dataset = _dataset("mimic4demo-readmission")
    assert dataset.group_column == "subject_id" and len(set(dataset.groups)) == 42
    for seed in range(5):
        split = train_val_test_split(dataset.y.astype(int).to_numpy(), dataset.groups, seed=seed)
        sides = [set(dataset.groups[part]) for part in (split.train, split.val, split.test)]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])


def test_next_diagnoses_is_multilabel_over_frequent_codes():
    dataset = _dataset("mimic4demo-next-diagnoses")
    assert dataset.y.shape[0] == len(dataset.X) and dataset.y.shape[1] >= 2
    assert set(np.unique(dataset.y.to_numpy())) == {0, 1}
    assert (dataset.y.sum(axis=0) >= 10).all()


@pytest.mark.parametrize("learner", ["bag-of-codes", "visit-gru", "visit-transformer"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_each_visit_learner_trains_predicts_and_round_trips(learner, kind, demo_tables):
    from medai.modalities.longitudinal.visit_learners import BagOfCodes
    from medai.modalities.longitudinal.visit_networks import VisitNetwork

    task = {"binary": VisitTask("readmission", window_days=30), "multiclass": VisitTask("los", index_visits="all"),
            "multilabel": VisitTask("next-diagnoses", next_required=("conditions",))}[kind]
    samples, X = build_samples(*demo_tables, task)
    if kind == "multilabel":
        labels = ["4019", "2724", "V1582"]
        y = np.array([[float(c in codes) for c in labels] for codes in samples["label"].to_list()])
        n_out = len(labels)
    else:
        y = samples["label"].to_numpy()
        n_out = 10 if kind == "multiclass" else 2
    train, held = np.arange(len(X))[: len(X) * 3 // 4], np.arange(len(X))[len(X) * 3 // 4:]
    if learner == "bag-of-codes":
        model = BagOfCodes(kind=kind, n_outputs=n_out)
    else:
        model = VisitNetwork(learner.removeprefix("visit-"), kind=kind, n_outputs=n_out, epochs=3, dim=16)
    model.fit(X.take(train), y[train], X.take(held), y[held])
    p = model.predict_proba(X.take(held))
    assert p.shape == (len(held), n_out) and np.all((p >= 0) & (p <= 1))
    if kind != "multilabel":
        assert np.allclose(p.sum(axis=1), 1.0)
    files = model.to_files()
    again = (BagOfCodes.from_files(*files.values()) if learner == "bag-of-codes"
             else VisitNetwork.from_files(*files.values()))
    assert np.allclose(again.predict_proba(X.take(held)), p)


def test_history_changes_what_the_network_sees(demo_tables):
    from medai.modalities.longitudinal.visit_networks import VisitNetwork

    _, X = build_samples(*demo_tables, VisitTask("mortality"))
    network = VisitNetwork(history=True)  # unfitted: only the encoding is used
    network.vocabulary_ = {t: j + 1 for j, t in enumerate(sorted({t for h in X.tokens() for v in h for t in v}))}
    full, last = network._encode(X), VisitNetwork(history=False)
    last.vocabulary_ = network.vocabulary_
    assert max(len(h) for h in full) > 1 and all(len(h) == 1 for h in last._encode(X))


def test_built_in_task_trains_through_the_road_and_explains(tmp_path):
    from medai.road.model import load_model
    from medai.road.options import TrainOptions
    from medai.road.train import train_task

    require_data(DEMO)
    result = train_task("mimic4demo-mortality", tmp_path / "m", TrainOptions(seed=1, n_boot=50, show_progress=False))
    assert result.metrics["split"]["group_column"] == "subject_id"
    assert 0.0 <= result.metrics["test"]["auroc"]["value"] <= 1.0
    model = load_model(tmp_path / "m")
    dataset = _dataset("mimic4demo-mortality")
    X = dataset.X.take(result.parts["test"][:2])
    assert np.allclose(model.scores(X), result.model.scores(X))
    explained = model.modality.explain(model, X, top_k=3)
    assert len(explained) == 2 and len(explained[0]["contributions"]) == 3


def test_meds_style_event_table_gives_the_same_samples(demo_tables, tmp_path):
    from medai.modalities.longitudinal.visits import read_event_table

    visits, events = demo_tables
    prefix = {"conditions": "DIAGNOSIS//", "procedures": "PROCEDURE//", "drugs": "DRUG//"}
    meds = events.select(pl.col("subject_id"), pl.col("visit_id"),
                         code=pl.col("domain").replace_strict(prefix) + pl.col("code"))
    meds.write_csv(tmp_path / "events.csv")
    visits.with_columns(pl.col("start").dt.strftime("%Y-%m-%d %H:%M:%S"), pl.col("end").dt.strftime(
        "%Y-%m-%d %H:%M:%S")).write_csv(tmp_path / "visits.csv")
    v2, e2 = read_event_table(tmp_path / "events.csv", tmp_path / "visits.csv")
    for task in (VisitTask("mortality"), VisitTask("los", index_visits="all")):
        a, _ = build_samples(visits, events, task)
        b, _ = build_samples(v2, e2, task)
        assert len(a) == len(b) and a["label"].to_list() == b["label"].to_list()
    from medai.modalities.longitudinal.visit_data import train_on_event_tables
    from medai.road.options import TrainOptions

    result = train_on_event_tables("mimic4demo-los", tmp_path / "events.csv", tmp_path / "visits.csv",
                                   tmp_path / "m", TrainOptions(seed=0, n_boot=20, show_progress=False))
    assert result.metrics["kind"] == "multiclass" and result.metrics["split"]["group_column"] == "subject_id"
    with pytest.raises(MedAIError, match="unknown visit task"):
        train_on_event_tables("physionet2012-mortality", tmp_path / "events.csv", tmp_path / "visits.csv")


def test_missing_tables_and_columns_are_named(tmp_path):
    from medai.modalities.longitudinal.visits import mimic_visits, read_event_table

    root = require_data(DEMO)
    hosp = tmp_path / "hosp"
    hosp.mkdir()
    for name in ("admissions", "patients", "diagnoses_icd", "procedures_icd"):
        shutil.copy(root / "hosp" / f"{name}.csv.gz", hosp)
    with pytest.raises(MedAIError, match="prescriptions"):
        mimic_visits(tmp_path)
    (tmp_path / "events.csv").write_text("subject_id,code\n1,DIAGNOSIS//I10\n")
    (tmp_path / "visits.csv").write_text("subject_id,visit_id,start,end\n1,1,2020-01-01 00:00:00,2020-01-02\n")
    with pytest.raises(MedAIError, match="visit_id"):
        read_event_table(tmp_path / "events.csv", tmp_path / "visits.csv")
    (tmp_path / "events.csv").write_text("subject_id,visit_id,code\n1,1,DIAGNOSIS//I10\n")
    (tmp_path / "visits.csv").write_text("subject_id,visit_id,start\n1,1,2020-01-01 00:00:00\n")
    with pytest.raises(MedAIError, match="end"):
        read_event_table(tmp_path / "events.csv", tmp_path / "visits.csv")
    (tmp_path / "visits.csv").write_text("subject_id,visit_id,start,end\n1,1,yesterday,2020-01-02\n")
    with pytest.raises(MedAIError, match="readable start time"):
        read_event_table(tmp_path / "events.csv", tmp_path / "visits.csv")


def test_empty_cohort_and_wrong_learners_get_clear_errors(tmp_path):
    from medai.modalities import get_modality
    from medai.modalities.longitudinal.visit_data import visit_dataset
    from medai.modalities.longitudinal.visit_learners import BagOfCodes
    from medai.modalities.longitudinal.visits import read_event_table
    from medai.tasks import get_task

    (tmp_path / "events.csv").write_text("subject_id,visit_id,code\n1,1,DIAGNOSIS//I10\n1,2,DRUG//0001\n")
    (tmp_path / "visits.csv").write_text("subject_id,visit_id,start,end\n1,1,2020-01-01 00:00:00,2020-01-02\n"
                                         "1,2,2020-02-01 00:00:00,2020-02-03\n")
    visits, events = read_event_table(tmp_path / "events.csv", tmp_path / "visits.csv")
    modality = get_modality("longitudinal")
    with pytest.raises(MedAIError, match="cohort is empty"):  # no visit has all three domains
        visit_dataset(modality, get_task("mimic4demo-mortality"), visits, events, "events.csv")
    _, X = build_samples(visits, events, VisitTask("los", index_visits="all", required=()))
    assert len(X) == 2
    with pytest.raises(MedAIError, match="regression"):
        BagOfCodes(kind="regression").fit(X, [1, 2])
    with pytest.raises(MedAIError, match="visit histories"):
        BagOfCodes().fit(np.zeros((3, 2)), [0, 1, 0])
    with pytest.raises(MedAIError, match="unknown visit label"):
        VisitTask("survival")


def test_learner_names_are_checked_against_the_kind_of_data(demo_tables):
    from types import SimpleNamespace

    from medai.modalities import get_modality
    from medai.modalities.longitudinal.visit_learners import BagOfCodes
    from medai.modalities.longitudinal.visit_networks import VisitNetwork
    from medai.road.options import TrainOptions
    from medai.tasks.kinds import TargetSpec

    modality = get_modality("longitudinal")
    _, X = build_samples(*demo_tables, VisitTask("mortality"))
    visits, stays = SimpleNamespace(X=X), SimpleNamespace(X=None)
    target = TargetSpec("binary", "mortality", ["0", "1"], positive_label="1")
    options = TrainOptions()
    assert isinstance(modality.make_learner("auto", target, options, None, visits), BagOfCodes)
    network = modality.make_learner("gru", target, options, None, visits)
    assert isinstance(network, VisitNetwork) and network.architecture == "gru"
    with pytest.raises(MedAIError, match="does not take visit histories"):
        modality.make_learner("lightgbm", target, options, None, visits)
    with pytest.raises(MedAIError, match="learns from visit histories"):
        modality.make_learner("visit-gru", target, options, None, stays)


def test_medai_starts_without_the_ehr_extra():
    """polars belongs to ``medai[ehr]``: the command line and the task registry must import without it."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['polars'] = None\n"
            "import medai.cli\nfrom medai.tasks import get_task\n"
            "assert get_task('mimic4demo-mortality').name == 'mimic4demo-mortality'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
