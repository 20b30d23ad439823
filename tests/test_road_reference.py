"""Tabular and imaging figures are unchanged by the move onto the one road: the same seeds and options give
the metrics recorded with the code before it (tests/data/road_reference.json), to 1e-9 for tables. Image
figures are compared to 1e-3: torch's CPU kernels differ between instruction sets (AVX-512 where they were
recorded, AVX2 on other machines), so network outputs differ in the last bits and near-tied test scores can
swap places (seen: AUROC 0.461281 against 0.461270)."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_data
from helpers import risk_frame

from medai.modalities import get_modality
from medai.road import TrainOptions, train, train_task, user_task

REFERENCE = json.loads((Path(__file__).parent / "data" / "road_reference.json").read_text())


def same(recorded, got, path="", tol=1e-9) -> list[str]:
    """Where two JSON values differ by more than ``tol`` (numbers) or at all (anything else)."""
    if isinstance(recorded, dict) and isinstance(got, dict):
        keys = set(recorded) | set(got)
        return [d for k in sorted(keys) for d in same(recorded.get(k), got.get(k), f"{path}.{k}", tol)]
    if isinstance(recorded, list) and isinstance(got, list) and len(recorded) == len(got):
        return [d for i, (a, b) in enumerate(zip(recorded, got, strict=True))
                for d in same(a, b, f"{path}[{i}]", tol)]
    if isinstance(recorded, int | float) and isinstance(got, int | float) and not isinstance(recorded, bool):
        return [] if abs(recorded - got) <= tol else [f"{path}: {recorded} != {got}"]
    return [] if recorded == got else [f"{path}: {recorded!r} != {got!r}"]


def check(name: str, metrics: dict, tol: float = 1e-9) -> None:
    got = {key: metrics.get(key) for key in ("test", "cv", "decision", "confusion_matrix", "learner")}
    assert same(REFERENCE[name], got, tol=tol) == []


def user_frame(frame, tmp_path, **options):
    tabular = get_modality("tabular")
    options = TrainOptions(show_progress=False, target="outcome", **options)
    dataset = tabular.dataset(frame, ["outcome"], options, source="d.csv")
    return train(user_task(Path("d.csv"), tabular, "outcome"), dataset, tmp_path / "m", options, tabular)


def test_wdbc(tmp_path):
    result = train_task("breast-cancer-wdbc", tmp_path / "m", TrainOptions(seed=0, n_boot=200, cv="3x2",
                                                                          show_progress=False))
    check("wdbc_default_seed0_cv3x2_boot200", result.metrics)


def test_cleveland_random_forest(tmp_path):
    require_data("tabular/heart_disease_uci/processed.cleveland.data")
    result = train_task("heart-disease-cleveland", tmp_path / "m",
                        TrainOptions(learner="random-forest", seed=1, n_boot=200, cv="3x1", show_progress=False))
    check("cleveland_rf_seed1_cv3x1_boot200", result.metrics)


def test_auto_learner_grouped_by_patient(tmp_path):
    frame = risk_frame(300)
    frame["patient"] = np.repeat(np.arange(100), 3)
    result = user_frame(frame.drop(columns=["patient_id"]), tmp_path, learner="auto", seed=2, n_boot=100, cv=None,
                        group_column="patient")
    check("risk300_auto_group_seed2_boot100", result.metrics)


def test_calibrated_lightgbm_at_a_target_sensitivity(tmp_path):
    result = user_frame(risk_frame(400, seed=3), tmp_path, learner="lightgbm", threshold="sensitivity:0.9", seed=0,
                        n_boot=100, cv="3x1", id_column="patient_id", extra={"calibration": "isotonic"})
    check("risk400s3_lgbm_isotonic_sens09_seed0_boot100", result.metrics)


@pytest.mark.parametrize("task,name,max_train", [
    ("breast-ultrasound", "breast_quick_seed0_threads1", 96),
    ("pneumonia-xray", "pneumonia_quick200_seed0_threads1", 200),
])
def test_imaging(tmp_path, task, name, max_train):
    pytest.importorskip("torch")
    require_data(f"imaging/medmnist/{'breastmnist' if task.startswith('breast') else 'pneumoniamnist'}.npz")
    result = train_task(task, tmp_path / "m", TrainOptions(n_boot=50, show_progress=False, max_train=max_train,
                                                           extra={"epochs": 1, "members": 1, "threads": 1}))
    check(name, result.metrics, tol=1e-3)


def test_the_comparison_catches_a_change():
    recorded = REFERENCE["wdbc_default_seed0_cv3x2_boot200"]
    changed = json.loads(json.dumps(recorded))
    changed["test"]["auroc"]["value"] += 1e-6
    assert same(recorded, changed) and not same(recorded, json.loads(json.dumps(recorded)))
    changed["test"]["auroc"]["value"] += 0.01  # the image tolerance still catches a real change
    assert same(recorded, changed, tol=1e-3) and not same(recorded, changed, tol=0.1)


def test_demo_prints_the_same_table(tmp_path, capsys, monkeypatch):
    """`make demo` after the move: the same models (metrics recorded before it) and the same printed table."""
    require_data("tabular/heart_disease_uci/processed.cleveland.data")
    require_data("tabular/pima_indians_diabetes/pima-indians-diabetes.data.csv")
    from test_cli import run

    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(["demo"], capsys)
    assert code == 0, err
    for name in ("breast-cancer-wdbc", "heart-disease-cleveland", "diabetes-pima"):
        check(f"demo_{name}", json.loads((tmp_path / "runs/demo" / name / "metrics.json").read_text()))
    recorded = (Path(__file__).parent / "data" / "demo_table.txt").read_text().splitlines()
    rows = [line for line in recorded if line.startswith("│")]
    assert [line for line in stdout.splitlines() if line.startswith("│")] == rows
