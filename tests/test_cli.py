"""The command line: results on stdout, and for every bad input one line on stderr with exit code 2."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import risk_frame

from medai.cli import main


def run(argv, capsys):
    sys_argv = sys.argv
    sys.argv = ["medai", *map(str, argv)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = sys_argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    frame = risk_frame(240)
    frame.to_csv(root / "train.csv", index=False)
    frame.drop(columns=["outcome"]).head(6).to_csv(root / "new.csv", index=False)
    return root


@pytest.fixture
def trained(files, tmp_path, capsys):
    out = tmp_path / "model"
    code, stdout, err = run(["train", "--data", files / "train.csv", "--target", "outcome", "--id-column",
                             "patient_id", "--learner", "logistic", "--out", out, "--cv", "none", "--json"], capsys)
    assert code == 0, err
    return out, json.loads(stdout)


def test_train_json_predict_explain_evaluate_and_registry(trained, files, tmp_path, capsys):
    out, metrics = trained
    assert metrics == json.loads((out / "metrics.json").read_text())
    code, stdout, _ = run(["predict", out, files / "new.csv", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0
    predictions = (tmp_path / "p.csv").read_text().splitlines()
    assert predictions[0] == ("patient_id,probability,label,prediction_set,uncertain,outside_training_data,"
                              "out_of_range,explanation")
    assert len(predictions) == 7
    code, stdout, _ = run(["explain", out, files / "new.csv", "--json", "--top-k", "2"], capsys)
    rows = json.loads(stdout)
    assert code == 0 and len(rows) == 6 and len(rows[0]["contributions"]) == 2
    code, stdout, _ = run(["evaluate", out, "--data", files / "train.csv", "--json"], capsys)
    evaluation = json.loads(stdout)
    assert code == 0 and evaluation["n"] == 240 and set(evaluation["test"]["auroc"]) == {"value", "ci_low", "ci_high"}
    assert 0 <= evaluation["conformal"]["coverage"]["value"] <= 1
    code, stdout, _ = run(["predict", out, files / "new.csv", "--json"], capsys)
    items = json.loads(stdout)
    assert code == 0 and len(items) == 6 and {"probability", "label", "prediction_set", "uncertain"} <= set(items[0])
    name = "train-outcome"
    code, stdout, _ = run(["models", "--json"], capsys)
    assert [m["name"] for m in json.loads(stdout)] == [name]
    code, stdout, _ = run(["models", "show", f"{name}:1"], capsys)
    assert code == 0 and "auroc" in stdout
    code, stdout, _ = run(["predict", name, files / "new.csv"], capsys)  # a registry reference works too
    assert code == 0 and stdout.count("\n") == 7


def _bad(capsys, argv, needle):
    code, stdout, err = run(argv, capsys)
    assert code == 2, (argv, err)
    assert "Traceback" not in err
    assert err.strip().startswith("error:") and needle in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_every_bad_input_is_one_clear_line(trained, files, tmp_path, capsys):
    out, _ = trained
    frame = risk_frame(60)
    (tmp_path / "empty.csv").write_text("")
    frame.assign(outcome="yes").to_csv(tmp_path / "oneclass.csv", index=False)
    frame.assign(blank=np.nan).to_csv(tmp_path / "blank.csv", index=False)
    frame.drop(columns=["age", "outcome"]).to_csv(tmp_path / "noage.csv", index=False)
    typed = frame.drop(columns=["outcome"]).astype({"age": object})
    typed.loc[2, "age"] = "old"
    typed.to_csv(tmp_path / "typed.csv", index=False)
    train = ["train", "--out", tmp_path / "x", "--data"]
    _bad(capsys, ["train", "no-such-task"], "unknown task 'no-such-task'")
    _bad(capsys, [*train, tmp_path / "missing.csv", "--target", "y"], "does not exist")
    _bad(capsys, [*train, tmp_path / "empty.csv", "--target", "y"], "empty")
    _bad(capsys, [*train, files / "train.csv", "--target", "nope"], "target column 'nope'")
    _bad(capsys, [*train, tmp_path / "oneclass.csv", "--target", "outcome"], "single value")
    _bad(capsys, [*train, tmp_path / "blank.csv", "--target", "outcome"], "'blank' in")
    _bad(capsys, ["predict", out, tmp_path / "noage.csv"], "missing column(s) the model needs: ['age']")
    _bad(capsys, ["predict", out, tmp_path / "typed.csv"], "column 'age' must be numeric but row 3 holds text")
    _bad(capsys, ["predict", "no-such-model", files / "new.csv"], "neither a model directory")
    _bad(capsys, ["train", "breast-cancer-wdbc", "--cv", "lots", "--out", tmp_path / "y"], "--cv")
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    (tampered / "model.skops").write_bytes(b"\x00" * 10)
    _bad(capsys, ["predict", tampered, files / "new.csv"], "checksum mismatch for model.skops")


def test_failed_commands_do_not_damage_the_registry(trained, files, tmp_path, capsys):
    out, _ = trained
    code, before, _ = run(["models", "--json"], capsys)
    run(["train", "--data", tmp_path / "nothing.csv", "--target", "outcome"], capsys)
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "metrics.json").write_text("{}")
    from medai.errors import IntegrityError
    from medai.registry import Registry

    with pytest.raises(IntegrityError):
        Registry().register(broken)
    code, after, _ = run(["models", "--json"], capsys)
    assert json.loads(before) == json.loads(after)
    code, stdout, _ = run(["predict", "train-outcome", files / "new.csv"], capsys)
    assert code == 0


def test_console_script_entry_point(tmp_path):
    exe = Path(sys.executable).parent / "medai"
    result = subprocess.run([str(exe), "train", "nonexistent-task"], capture_output=True, text=True,
                            env={"MEDAI_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown task 'nonexistent-task'; known tasks:")
    listing = subprocess.run([str(exe), "tasks", "--json"], capture_output=True, text=True,
                             env={"MEDAI_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert listing.returncode == 0 and "heart-disease-cleveland" in listing.stdout
