"""``medai monitor`` end to end on models of other kinds and modalities: the road writes the training reference for
every model (a regression table, a text classifier); the replay tool injects a shift that the report finds (and
finds nothing without one); outcomes from a file join the replayed predictions; bad input exits 2."""

from __future__ import annotations

import json

import pandas as pd
from test_cli import run
from text_fixtures import notes_table


def _diabetes(tmp_path):
    from sklearn.datasets import load_diabetes

    path = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


def test_regression_reference_replay_with_a_shift_outcomes_file_and_settings(tmp_path, capsys):
    data = _diabetes(tmp_path)
    code, _, err = run(["train", "--data", data, "--target", "target", "--learner", "ridge", "--cv", "none",
                        "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    reference = json.loads((tmp_path / "m/monitoring.json").read_text())
    assert [p["name"] for p in reference["predictions"]] == ["predicted target"]
    assert {f["name"] for f in reference["features"]} == {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5",
                                                          "s6"}
    assert reference["embedding"]["dims"] == 10  # the learner's transformed features, already small

    code, _, err = run(["monitor", "settings", "diabetes-target", "--set", "window=150", "--set", "min_outcomes=40",
                        "--set", "outcome_window=100"], capsys)
    assert code == 0, err
    code, stdout, err = run(["monitor", "simulate", "diabetes-target", "--data", data, "--shift", "bmi+0.05",
                             "--shift-at", "0.6", "--batch", "30", "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout)
    report = result["report"]
    assert result["replay"]["replayed"] == 442 and result["replay"]["outcomes"]["matched"] == 442
    assert "features:bmi" in report["drift"][-1]["drifted"]
    assert not report["drift"][0]["drifted"]  # before the shift
    window = report["performance"][-1]
    assert window["n"] == 100 and "coverage" in window and "r2" in window["metrics"]

    # outcomes from a file, joined by the replay's record ids
    pd.DataFrame({"encounter": ["sim0-0", "sim0-1", "unknown"], "y": [100.0, 120.0, 90.0]}).to_csv(
        tmp_path / "late.csv", index=False)
    code, stdout, err = run(["monitor", "outcomes", tmp_path / "late.csv", "--model", "diabetes-target",
                             "--id-column", "encounter", "--outcome-column", "y"], capsys)
    assert code == 0, err
    assert "3 outcomes read, 2 joined" in stdout
    code, _, err = run(["monitor", "outcomes", tmp_path / "late.csv", "--model", "diabetes-target"], capsys)
    assert code == 2 and "no column 'record_id'" in err
    pd.DataFrame({"record_id": ["a"], "outcome": ["high"]}).to_csv(tmp_path / "text.csv", index=False)
    code, _, err = run(["monitor", "outcomes", tmp_path / "text.csv", "--model", "diabetes-target"], capsys)
    assert code == 2 and "outcome" in err
    code, _, err = run(["monitor", "simulate", "diabetes-target", "--data", data, "--shift", "bmi/2"], capsys)
    assert code == 2 and "expected COLUMN*FACTOR" in err
    code, _, err = run(["monitor", "simulate", "diabetes-target", "--data", data, "--shift", "height*2"], capsys)
    assert code == 2 and "no column 'height'" in err
    code, _, err = run(["monitor", "report", "no-such-model"], capsys)
    assert code == 2 and "not a registered model" in err
    code, _, err = run(["monitor", "settings", "diabetes-target", "--set", "fdr=3"], capsys)
    assert code == 2 and "fdr" in err
    code, stdout, err = run(["monitor", "report", "diabetes-target", "--plots", tmp_path / "plots"], capsys)
    assert code == 0 and (tmp_path / "plots/drift.png").stat().st_size > 1000, err
    assert "alert" in stdout and "bmi" in stdout
    code, stdout, err = run(["monitor", "purge", "--days", "0.000001"], capsys)
    assert code == 0 and "prediction rows" in stdout, err
    code, stdout, _ = run(["monitor", "report", "diabetes-target", "--json"], capsys)
    assert json.loads(stdout)["counts"] == {"served": 0, "with_outcome": 0}
    assert json.loads(stdout)["alerts"]  # alerts outlive the retention of the rows they were raised on


def test_text_model_embedding_and_label_shift(tmp_path, capsys):
    notes_table(tmp_path / "notes.csv", n=240)
    code, _, err = run(["train", "--data", tmp_path / "notes.csv", "--target", "label", "--positive-label", "cardiac",
                        "--id-column", "note_id", "--cv", "none", "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    reference = json.loads((tmp_path / "m/monitoring.json").read_text())
    assert reference["features"] == [] and reference["embedding"]["dims"] > 16  # TF-IDF, projected to 16
    run(["monitor", "settings", "notes-label", "--set", "window=120", "--set", "min_window=40"], capsys)
    code, stdout, err = run(["monitor", "simulate", "notes-label", "--data", tmp_path / "notes.csv", "--json"],
                            capsys)
    assert code == 0, err
    assert not any(w["drifted"] for w in json.loads(stdout)["report"]["drift"])  # no shift, no alarm
    code, stdout, err = run(["monitor", "simulate", "notes-label", "--data", tmp_path / "notes.csv", "--shift",
                             "prevalence=0.95", "--shift-at", "0", "--seed", "1", "--json"], capsys)
    assert code == 0, err
    last = json.loads(stdout)["report"]["drift"][-1]
    assert "predictions:p(cardiac)" in last["drifted"] and "embedding:representation" in last["drifted"]
    code, _, err = run(["monitor", "simulate", "notes-label", "--data", tmp_path / "notes.csv", "--shift",
                        "noise=1"], capsys)
    assert code == 2 and "not a table" in err
