"""The longitudinal modality: reading stays (challenge layout from a .tar.gz or folder, long/MEDS tables), flags
for impossible values, the summary-feature baseline through the road (train -> package -> evaluate -> predict ->
explain), scoring at any hour, and bad input."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import require_data
from test_cli import run

from medai.errors import MedAIError
from medai.modalities.longitudinal.features import STATS, feature_names, summarise
from medai.modalities.longitudinal.reading import read_challenge, read_labels, read_long_table, read_stays
from medai.modalities.longitudinal.stays import Stays

VARIABLES = ("HR", "MAP", "Lactate", "GCS")


def synthetic_cohort(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long-format stays whose outcome depends on rising lactate and falling blood pressure."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(n):
        risk = rng.normal()
        died = int(rng.random() < 1 / (1 + np.exp(-(2.5 * risk - 1.5))))
        for hour in np.sort(rng.uniform(0, 48, size=rng.integers(8, 30))):
            rows.append((f"s{i}", round(hour, 2), "HR", 80 + 10 * risk + rng.normal(0, 5)))
            rows.append((f"s{i}", round(hour, 2), "MAP", 80 - 8 * risk * hour / 48 + rng.normal(0, 4)))
            if rng.random() < 0.3:
                rows.append((f"s{i}", round(hour, 2), "Lactate", max(0.3, 1.5 + risk * hour / 24 + rng.normal(0, .3))))
        rows.append((f"s{i}", 0.0, "GCS", float(np.clip(round(14 - 2 * risk + rng.normal()), 3, 15))))
        labels.append((f"s{i}", died, f"p{i // 2}"))
    events = pd.DataFrame(rows, columns=["stay_id", "time", "variable", "value"])
    return events, pd.DataFrame(labels, columns=["stay_id", "died", "patient"])


def challenge_files(events: pd.DataFrame) -> dict[str, str]:
    files = {}
    for stay, group in events.groupby("stay_id", sort=False):
        record = stay.lstrip("s")
        lines = ["Time,Parameter,Value", f"00:00,RecordID,{record}", "00:00,Age,64", "00:00,Height,-1"]
        for _, row in group.sort_values("time").iterrows():
            minutes = int(round(row.time * 60))
            lines.append(f"{minutes // 60:02d}:{minutes % 60:02d},{row.variable},{row.value:.2f}")
        files[f"{record}.txt"] = "\n".join(lines) + "\n"
    return files


def write_tar(path: Path, files: dict[str, str], folder: str = "set-x") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def cohort(tmp_path):
    events, labels = synthetic_cohort()
    events.to_csv(tmp_path / "events.csv", index=False)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path / "events.csv", tmp_path / "labels.csv", events, labels


# -- containers and features ----------------------------------------------------------------------------------

def test_stays_take_until_and_features_agree_with_a_direct_computation():
    stays = Stays.from_long(np.array(["b", "a", "a", "a", "b"]), np.array([5.0, 1.0, 3.0, 2.0, 1.0]),
                            np.array(["HR", "HR", "HR", "MAP", "HR"]), np.array([90, 70, 80, 60, 100.0]),
                            ids=np.array(["a", "b", "c"]), horizon=6.0)
    assert stays.lengths.tolist() == [3, 2, 0] and stays.variables == ("HR", "MAP")
    F = summarise(stays)
    names = feature_names(stays.variables)
    col = {n: i for i, n in enumerate(names)}
    assert F[0, col["HR:last"]] == 80 and F[0, col["HR:first"]] == 70 and F[0, col["HR:count"]] == 2
    assert F[0, col["HR:slope"]] == pytest.approx(5.0) and F[0, col["HR:hours_since_last"]] == pytest.approx(3.0)
    assert F[1, col["HR:mean"]] == 95 and np.isnan(F[1, col["MAP:last"]]) and F[1, col["MAP:count"]] == 0
    assert np.isnan(F[2, col["HR:last"]]) and F[2, col["n_observations"]] == 0  # a stay without observations
    early = stays.until(2.0)
    assert early.lengths.tolist() == [2, 1, 0] and early.horizon.tolist() == [2.0, 2.0, 2.0]
    assert summarise(early)[1, col["HR:last"]] == 100
    picked = stays.take([1, 0])
    assert picked.ids.tolist() == ["b", "a"] and picked.value.tolist() == [100, 90, 70, 60, 80]
    assert len(STATS) * 2 + 2 == F.shape[1]


# -- reading --------------------------------------------------------------------------------------------------

def test_challenge_layout_from_archive_and_folder_flags_impossible_values(tmp_path):
    events, _ = synthetic_cohort(20)
    files = challenge_files(events)
    first = next(iter(files))
    files[first] += "47:00,pH,735\n47:10,Temp,-17.8\n"  # recording errors seen in the real challenge data
    files["999.txt"] = "Time,Parameter,Value\n00:00,RecordID,999\n00:00,Age,70\n"  # descriptors only
    archive = write_tar(tmp_path / "set.tar.gz", files)
    read = read_stays(archive)
    assert len(read.stays) == 21 and read.id_column == "RecordID"
    assert "RecordID" not in read.stays.variables and "Height" not in read.stays.variables  # -1 = missing
    flagged = next(n for n in read.notes if "physiologically possible" in n)
    assert "pH 1" in flagged and "Temp 1" in flagged
    assert read.stays.horizon.max() == 48.0
    folder = tmp_path / "stays"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    again = read_challenge(folder)
    assert again.stays.ids.tolist() == read.stays.ids.tolist()
    assert np.array_equal(again.stays.value, read.stays.value)


def test_long_table_with_timestamps_units_and_meds_events(tmp_path):
    table = pd.DataFrame({
        "subject_id": ["1", "1", "1", "2", "2", "2", "2", "2"],
        "time": ["2150-01-01 00:00", "2150-01-01 06:30", "2150-01-02 00:00", "2150-03-01 10:00",
                 "2150-03-01 11:00", "2150-03-01 12:00", "2150-03-01 12:00", "2150-03-01 13:00"],
        "code": ["HR", "HR", "DX//I10", "HR", "Lactate", "Lactate", "HR", "Lactate"],
        "numeric_value": [80, 95, None, 300.5, 2.0, 18.0, 400, 2.5],
        "unit": ["bpm", "bpm", None, "bpm", "mmol/L", "mg/dL", "bpm", "mmol/L"],
    })
    table.to_parquet(tmp_path / "events.parquet")
    read = read_long_table(tmp_path / "events.parquet")
    stays = read.stays
    assert stays.ids.tolist() == ["1", "2"] and set(stays.variables) == {"HR", "DX//I10", "Lactate"}
    frame = stays.to_frame()
    one = frame[frame.stay_id == "1"]
    assert one.time.tolist() == [0.0, 6.5, 24.0] and one[one.variable == "DX//I10"].value.item() == 1.0
    notes = " ".join(read.notes)
    assert "unit other than" in notes and "Lactate in 'mg/dL'" in notes  # one unit per variable
    assert "HR 2 (outside 1-300)" in notes  # 300.5 and 400 bpm flagged and left out
    assert stays.to_frame().query("stay_id == '2'").value.tolist() == [2.0, 2.5]
    assert "occurrences" in notes


def test_real_physionet_set_a_reads_with_its_documented_counts():
    path = require_data("ehr/physionet2012/set-a.tar.gz")
    read = read_challenge(path)
    assert len(read.stays) == 4000 and len(read.stays.variables) == 41
    y, target, _ = read_labels(path.parent / "Outcomes-a.txt", None, read.stays.ids, "RecordID")
    assert target == "In-hospital_death" and int(y.sum()) == 554 and y.notna().all()
    # the three stays with descriptors only (SOURCES.md) have no time series after hour 0
    only_descriptors = [i for i in ("140501", "140936", "141264")]
    index = {s: k for k, s in enumerate(read.stays.ids)}
    assert all(read.stays.take([index[s]]).time.max(initial=0) == 0 for s in only_descriptors)


# -- the road -------------------------------------------------------------------------------------------------

def test_generic_long_table_trains_evaluates_predicts_and_explains(cohort, tmp_path, capsys):
    events, labels, _, _ = cohort
    code, stdout, err = run(["train", "--data", events, "--labels", labels, "--target", "died", "--group-column",
                             "patient", "--out", tmp_path / "m", "--json", "--cv", "none"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["test"]["auroc"]["value"] > 0.75 and "event1_score" in metrics
    assert [r["hours"] for r in metrics["early_warning"]["by_hours"]][:3] == [6.0, 12.0, 24.0]
    assert metrics["split"]["group_column"] == "patient"
    meta = json.loads((tmp_path / "m/model.json").read_text())
    assert meta["modality"] == "longitudinal" and meta["input_schema"]["variables"] == sorted(VARIABLES)
    assert "Early warning" in (tmp_path / "m/report.html").read_text()
    assert (tmp_path / "m/plots/risk_timeline.png").is_file()

    code, stdout, err = run(["evaluate", tmp_path / "m", "--data", events, "--labels", labels, "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    assert set(result["test"]["auroc"]) == {"value", "ci_low", "ci_high"} and result["event1_score"]["value"] > 0.3
    code, _, err = run(["predict", tmp_path / "m", events, "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 240 and table.columns[0] == "stay_id" and table["probability"].between(0, 1).all()
    code, stdout, err = run(["explain", tmp_path / "m", events, "--json"], capsys)
    assert code == 0, err
    explained = json.loads(stdout)
    assert {c["feature"] for c in explained[0]["contributions"]} <= set(VARIABLES) | {"SAPS-I"}


def test_model_scores_a_stay_at_any_hour_from_the_data_seen(cohort, tmp_path, capsys):
    from medai.road import load_model

    events, labels, frame, _ = cohort
    code, _, err = run(["train", "--data", events, "--labels", labels, "--target", "died", "--out", tmp_path / "m",
                        "--cv", "none", "--no-register"], capsys)
    assert code == 0, err
    model = load_model(tmp_path / "m")
    stays = read_stays(events).stays
    at_12 = model.scores(stays.until(12.0))
    cut = frame[frame.time <= 12.0]
    cut.to_csv(tmp_path / "first12.csv", index=False)
    direct = read_stays(tmp_path / "first12.csv", window_hours=12.0).stays
    kept = [i for i, s in enumerate(stays.ids) if s in set(direct.ids)]
    assert np.allclose(at_12[kept], model.scores(direct), atol=1e-6)
    assert not np.allclose(at_12, model.scores(stays))


def test_challenge_archive_trains_and_evaluates_on_an_unseen_archive(tmp_path, capsys):
    events, labels = synthetic_cohort(300, seed=1)
    files = challenge_files(events)
    names = sorted(files)
    write_tar(tmp_path / "a.tar.gz", {n: files[n] for n in names[:200]})
    write_tar(tmp_path / "b.tar.gz", {n: files[n] for n in names[200:]})
    outcomes = labels.assign(RecordID=labels.stay_id.str.lstrip("s"))[["RecordID", "died"]]
    outcomes.rename(columns={"died": "In-hospital_death"}).to_csv(tmp_path / "Outcomes.txt", index=False)
    code, _, err = run(["train", "--data", tmp_path / "a.tar.gz", "--labels", tmp_path / "Outcomes.txt",
                        "--out", tmp_path / "m", "--cv", "none", "--no-register"], capsys)
    assert code == 0, err
    code, stdout, err = run(["evaluate", tmp_path / "m", "--data", tmp_path / "b.tar.gz", "--labels",
                             tmp_path / "Outcomes.txt", "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    assert result["n"] == 100 and result["test"]["auroc"]["value"] > 0.7
    assert 0 <= result["event1_score"]["value"] <= 1


# -- bad input ------------------------------------------------------------------------------------------------

def test_bad_input_gets_a_clear_message(cohort, tmp_path, capsys):
    events, labels, _, _ = cohort
    code, _, err = run(["train", "--data", events, "--target", "died", "--modality", "longitudinal"], capsys)
    assert code == 2 and "--labels" in err
    code, _, err = run(["train", "--data", events, "--labels", labels, "--target", "dead"], capsys)
    assert code == 2 and "no column 'dead'" in err
    (tmp_path / "wide.csv").write_text("a,b\n1,2\n")
    with pytest.raises(MedAIError, match="not a long table"):
        read_long_table(tmp_path / "wide.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(MedAIError, match="empty"):
        read_long_table(tmp_path / "empty.csv")
    other = pd.DataFrame({"stay_id": ["x"], "died": [1]})
    other.to_csv(tmp_path / "other.csv", index=False)
    code, _, err = run(["train", "--data", events, "--labels", tmp_path / "other.csv", "--target", "died"], capsys)
    assert code == 2 and "no stay" in err
    code, _, err = run(["train", "--data", events, "--labels", labels, "--target", "died", "--learner", "xgb"],
                       capsys)
    assert code == 2 and "unknown learner" in err
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as archive:
        data = b"hello"
        info = tarfile.TarInfo("x/readme.md")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(MedAIError, match="header"):
        read_stays(tmp_path / "bad.tar.gz")


def test_mimic_iv_demo_icu_stays_with_patient_level_splits():
    require_data("ehr/mimic-iv-clinical-database-demo-2.2/hosp/labevents.csv.gz")
    from medai.data.splits import train_val_test_split
    from medai.modalities import get_modality
    from medai.road.options import TrainOptions
    from medai.tasks import get_task

    task = get_task("mimic4demo-icu-mortality")
    dataset = get_modality("longitudinal").load_task_data(task, TrainOptions())
    assert len(dataset) == 140 and dataset.group_column == "subject_id" and len(set(dataset.groups)) == 100
    assert all("(" in v for v in dataset.X.variables)  # lab label with its fluid: urine pH is not blood pH
    assert dataset.X.horizon.max() == 24.0 and dataset.X.time.max() <= 24.0
    split = train_val_test_split(dataset.y.astype(int).to_numpy(), dataset.groups, val_size=0.2, test_size=0.3,
                                 seed=0, stratify=True)
    sides = [set(dataset.groups[part]) for part in (split.train, split.val, split.test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])  # no patient on two sides
