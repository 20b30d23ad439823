"""Image diagnosis end to end: built-in task and user folders through training, artifact, CLI and errors."""

import base64
import json
import shutil

import numpy as np
import pytest
from conftest import require_data
from PIL import Image
from test_cli import run

from medai.registry import Registry
from medai.road import TrainOptions, load_model, train_task

QUICK = dict(n_boot=50, show_progress=False, max_train=96, extra={"epochs": 1, "members": 1})


def make_folder(root, classes=("normal", "pneumonia"), n=24, size=32, seed=0):
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            image = (rng.random((size, size)) * 80).astype(np.uint8)
            if k:
                image[8:24, 8:24] += 120
            Image.fromarray(image).save(root / name / f"{name}_{i}.png")
    return root


@pytest.fixture(scope="module")
def breast_model(tmp_path_factory):
    require_data("imaging/medmnist/breastmnist.npz")
    out = tmp_path_factory.mktemp("img") / "breast"
    result = train_task("breast-ultrasound", out, TrainOptions(**QUICK))
    return out, result


def test_builtin_task_artifact_and_metrics(breast_model):
    out, result = breast_model
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["sizes"] == {"train": 96, "val": 78, "test": 156}
    assert metrics["decision"]["rule"] == "argmax" and metrics["decision"]["threshold"] == 0.5
    assert set(metrics["test"]) >= {"auroc", "accuracy", "sensitivity", "specificity", "ece"}
    assert "threshold" in metrics["test_at_validation_threshold"]
    report = (out / "report.html").read_text()
    assert "protocol (argmax) vs threshold chosen on validation" in report
    assert "gradcam_examples" in report and "test_examples" in report
    files = set(json.loads((out / "manifest.json").read_text())["files"])
    assert {"weights.safetensors", "network.json", "model.json", "card.md"} <= files
    # the positive class is malignant (label 0 in BreastMNIST), not label 1
    meta = json.loads((out / "model.json").read_text())
    assert meta["target"]["classes"] == ["malignant", "normal or benign"]
    assert meta["target"]["positive_label"] == "malignant"
    assert metrics["conformal"]["nominal"] == 0.9 and "conformal_coverage" in report


def test_loaded_model_predicts_files_with_gradcam(breast_model, tmp_path):
    out, _ = breast_model
    from medai.data.images import load_medmnist_npz

    images, labels = load_medmnist_npz(require_data("imaging/medmnist/breastmnist.npz"))["test"]
    paths = []
    for i in range(3):
        path = tmp_path / f"case{i}.png"
        Image.fromarray(images[i]).save(path)
        paths.append(path)
    model = Registry().load(Registry().register(out).name)
    rows = model.predict_files(paths, explain=True)
    assert [r["file"] for r in rows] == ["case0.png", "case1.png", "case2.png"]
    for row in rows:
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-5
        assert row["label"] in ("malignant", "normal or benign")
        assert base64.b64decode(row["explanation_png_base64"]).startswith(b"\x89PNG")
        assert set(row["prediction_set"]) <= {"malignant", "normal or benign"}
    loaded = load_model(out)
    direct = loaded.learner.predict_proba(loaded.modality.inputs_from_files(paths, loaded))
    assert np.allclose(direct[:, loaded.target.positive_index], [r["probability"] for r in rows])


def test_folder_training_and_cli_predict_explain_export(tmp_path, capsys):
    folder = make_folder(tmp_path / "xrays")
    code, stdout, err = run(["train", "--data", folder, "--epochs", "2", "--image-size", "32", "--members", "2",
                             "--positive-label", "pneumonia", "--out", tmp_path / "m", "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["split"]["sizes"]["test"] > 0 and metrics["decision"]["rule"] == "youden"
    # a two-network ensemble: both members trained, and predict/explain/export below work on the ensemble
    assert [m["seed"] for m in metrics["training"]["members"]] == [0, 1000]
    assert metrics["learner"] == "small-cnn (ensemble of 2)"
    code, stdout, err = run(["predict", tmp_path / "m", folder / "pneumonia", "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "file,probability,label,prediction_set,uncertain" and len(lines) == 25
    code, stdout, err = run(["explain", tmp_path / "m", folder / "pneumonia" / "pneumonia_0.png",
                             "-o", tmp_path / "heat.png"], capsys)
    assert code == 0 and (tmp_path / "heat.png").read_bytes().startswith(b"\x89PNG")
    code, stdout, err = run(["export", tmp_path / "m", "--format", "onnx", "-o", tmp_path / "m.onnx"], capsys)
    assert code == 0 and "max |onnx - torch|" in stdout


def test_image_bad_inputs(tmp_path, capsys):
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(one / "only" / "a.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = make_folder(tmp_path / "corrupt", n=6)
    (corrupt / "normal" / "normal_0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    for folder in (one, empty, corrupt):
        code, _, err = run(["train", "--data", folder, "--epochs", "1", "--out", tmp_path / "x"], capsys)
        assert code == 2 and err.startswith("error:") and "Traceback" not in err, err
    assert "normal_0.png" in err  # the corrupt file is named
    good = make_folder(tmp_path / "good", n=12)
    code, _, err = run(["train", "--data", good, "--epochs", "1", "--out", tmp_path / "g", "--positive-label",
                        "pneumonia"], capsys)
    assert code == 0, err
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tiny)
    code, _, err = run(["predict", tmp_path / "g", tiny], capsys)
    assert code == 2 and "tiny.png" in err
    shutil.copy(require_data("imaging/dicom/rtplan.dcm"), tmp_path / "plan.dcm")
    code, _, err = run(["predict", tmp_path / "g", tmp_path / "plan.dcm"], capsys)
    assert code == 2 and "plan.dcm" in err
