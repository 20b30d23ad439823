"""Artifacts round-trip and detect tampering; the registry versions models and never loses one."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import risk_frame, train_frame

from medai.errors import IntegrityError, MedAIError, NotFoundError
from medai.models.artifact import read_manifest, verify_artifact, write_artifact
from medai.registry import Registry, parse_ref
from medai.road import load_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifact")
    frame = risk_frame(240)
    train_frame(frame, root / "model", learner="logistic", cv=None, n_boot=50, id_column="patient_id")
    return root / "model", frame


@pytest.fixture
def artifact(trained, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(trained[0], copy)
    return copy


def test_artifact_layout_and_round_trip(artifact, trained):
    names = set(read_manifest(artifact))
    assert {"model.json", "model.skops", "metrics.json", "report.html", "card.md"} <= names
    assert not any(name.endswith((".pkl", ".pickle", ".joblib")) for name in names)
    model = load_model(artifact)
    frame = trained[1]
    a = model.predict_table(frame.head(20), explain=True)
    b = load_model(artifact).predict_table(frame.head(20), explain=True)
    assert a.equals(b)
    assert list(a.columns) == ["patient_id", "probability", "label", "prediction_set", "uncertain",
                               "outside_training_data", "out_of_range", "explanation"]
    assert a["patient_id"].tolist() == frame["patient_id"].head(20).tolist()
    assert set(a["label"]) <= {"yes", "no"}


@pytest.mark.parametrize("victim", ["model.skops", "model.json", "metrics.json", "report.html"])
def test_tampered_file_is_refused(artifact, victim):
    with open(artifact / victim, "ab") as handle:
        handle.write(b" ")
    with pytest.raises(IntegrityError, match=f"checksum mismatch for {victim}"):
        load_model(artifact)


def test_missing_file_and_missing_manifest(artifact, tmp_path):
    (artifact / "card.md").unlink()
    with pytest.raises(IntegrityError, match="card.md is missing"):
        verify_artifact(artifact)
    (artifact / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match="not a MedAI model artifact"):
        load_model(artifact)
    with pytest.raises(NotFoundError):
        load_model(tmp_path / "nowhere")


def test_write_refuses_to_clobber_foreign_directory(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(MedAIError, match="not empty"):
        write_artifact(foreign, {"model.json": b"{}"})
    assert (foreign / "holiday.jpg").read_bytes() == b"x"


def test_failed_write_keeps_previous_artifact(artifact, monkeypatch):
    before = read_manifest(artifact)
    import medai.models.artifact as module

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(module, "publish_directory", boom)
    with pytest.raises(OSError):
        write_artifact(artifact, {"model.json": b"{}"})
    assert read_manifest(artifact) == before
    verify_artifact(artifact)
    assert not [p for p in artifact.parent.iterdir() if ".staging-" in p.name]


def test_registry_versions_and_stages(artifact):
    registry = Registry()
    first = registry.register(artifact, name="risk")
    second = registry.register(artifact, name="risk")
    assert (first.version, second.version) == (1, 2)
    assert registry.get("risk").version == 2
    registry.set_stage("risk", 1, "production")
    assert registry.get("risk").version == 1  # production wins over newer versions
    registry.set_stage("risk", 2, "production")
    assert registry.get("risk", 1).stage == "staging"
    assert [r.version for r in registry.versions("risk")] == [1, 2]
    assert registry.resolve("risk:1").metrics["test"]["auroc"]["value"] is not None
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.get("risk", 9)
    with pytest.raises(NotFoundError, match="no model named"):
        registry.get("nothing")
    with pytest.raises(MedAIError, match="stage"):
        registry.set_stage("risk", 1, "gold")
    assert parse_ref("a:3") == ("a", 3)
    with pytest.raises(MedAIError):
        parse_ref("a:latest")


def test_registry_copy_is_immutable_and_verified(artifact):
    registry = Registry()
    record = registry.register(artifact, name="risk")
    shutil.rmtree(artifact)  # the user's copy can go away
    model = registry.load("risk")
    assert model.family == "tabular"
    # rewriting a file AND its manifest inside the store is still caught by the registry's copy
    stored = record.artifact_path
    metrics = json.loads(open(f"{stored}/metrics.json").read())
    metrics["test"]["auroc"]["value"] = 1.0
    open(f"{stored}/metrics.json", "w").write(json.dumps(metrics))
    from medai.fsutil import sha256_file

    manifest = json.loads(open(f"{stored}/manifest.json").read())
    manifest["files"]["metrics.json"] = sha256_file(f"{stored}/metrics.json")
    open(f"{stored}/manifest.json", "w").write(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="registry"):
        registry.load("risk")


def test_failed_registration_leaves_registry_intact(artifact, tmp_path):
    registry = Registry()
    registry.register(artifact, name="risk")
    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    (broken / "model.skops").write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        registry.register(broken, name="risk")
    assert [r.version for r in registry.versions("risk")] == [1]
    assert len(registry.load("risk").predict_table(risk_frame(5))) == 5
    with pytest.raises(MedAIError, match="model name"):
        registry.register(artifact, name="bad name!")


def test_registry_on_sqlite_and_postgresql(artifact, database_url):
    registry = Registry(database_url)
    record = registry.register(artifact, name="pg-risk")
    assert registry.get("pg-risk").version == record.version == 1
    assert registry.list_models()[0].name == "pg-risk"
    assert registry.load("pg-risk").predict_table(risk_frame(3))["probability"].between(0, 1).all()
    assert np.isfinite(record.metrics["test"]["auroc"]["value"])


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_writers_are_cleaned_and_live_ones_kept(artifact, tmp_path):
    """Issue 9, finding 8: 100 killed registrations left 48 orphan staging directories that nothing removed."""
    import os

    from medai.fsutil import clean_stale_siblings

    registry = Registry()
    record = registry.register(artifact, name="risk")
    folder = Path(record.artifact_path).parent
    dead, live = _dead_pid(), os.getpid()
    leftovers = {
        "dead_staging": folder / f".v2-{dead}-0badc0de.staging-{dead}-abc123",
        "dead_copy": folder / f"v2-{dead}-0badc0de",  # published, its row never committed
        "live_staging": folder / f".v3-{live}-0badc0de.staging-{live}-abc123",
        "live_copy": folder / f"v3-{live}-0badc0de",
    }
    for path in leftovers.values():
        shutil.copytree(artifact, path)
    assert registry.cleanup() == {"staging": 1, "unregistered": 1}
    assert not leftovers["dead_staging"].exists() and not leftovers["dead_copy"].exists()
    assert leftovers["live_staging"].exists() and leftovers["live_copy"].exists()
    assert Path(record.artifact_path).is_dir() and registry.load("risk") is not None
    # an artifact whose replacement died between its two renames is put back
    out = tmp_path / "out"
    shutil.copytree(artifact, tmp_path / f".out.old-{dead}-12345678")
    assert read_manifest(out)  # restored on first read
    assert out.is_dir() and not list(tmp_path.glob(".out.old-*"))
    shutil.copytree(artifact, tmp_path / f".out.staging-{dead}-xyz")
    assert clean_stale_siblings(tmp_path) == {"staging": 1, "backups": 0, "restored": 0}
