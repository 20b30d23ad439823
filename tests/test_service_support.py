"""Shared fixtures of the service tests (imported by tests/test_service_*.py; holds no tests itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROLES = ("viewer", "clinician", "admin")


@pytest.fixture(scope="session")
def wdbc_artifact(tmp_path_factory) -> Path:
    """A breast-cancer (WDBC) tabular model trained once per test session (~3 s)."""
    from medai.road import TrainOptions, train_task

    home = tmp_path_factory.mktemp("train_home")
    out = tmp_path_factory.mktemp("wdbc") / "model"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDAI_HOME", str(home))
        train_task("breast-cancer-wdbc", out, TrainOptions(seed=0, cv=None, n_boot=50, show_progress=False))
    return out


@pytest.fixture(scope="session")
def imaging_artifact(tmp_path_factory) -> Path:
    """A tiny image classifier (one epoch on toy images), trained once per session (~15 s)."""
    import numpy as np

    pytest.importorskip("torch")
    from medai.modalities.imaging.data import image_dataset
    from medai.road import TrainOptions, train
    from medai.tasks.catalog import get_task

    rng = np.random.default_rng(0)
    images, labels, official, start = [], [], {}, 0
    for split, n in zip(("train", "val", "test"), (64, 32, 32), strict=True):
        y = rng.integers(0, 2, n)
        images += [(rng.random((28, 28)) * 0.3 + 0.7 * k * np.tri(28)).astype(np.float32) for k in y]
        labels += list(y)
        official[split] = np.arange(start, start + n)
        start += n
    data = image_dataset(images, np.asarray(labels), ["normal", "pneumonia"], 2, 28, source="toy", official=official)
    out = tmp_path_factory.mktemp("imaging") / "model"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDAI_HOME", str(tmp_path_factory.mktemp("imaging_home")))
        options = TrainOptions(learner="small-cnn", n_boot=20, show_progress=False,
                               extra={"epochs": 1, "threads": 1})
        train(get_task("pneumonia-xray"), data, out, options)
    return out


@pytest.fixture(scope="session")
def wdbc_rows() -> list[dict[str, Any]]:
    """Five real records (feature columns only) from scikit-learn's copy of WDBC."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"]).head(5)
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


class FakeFileModel:
    """Stands in for a model that takes files (an image model): records what it was given (paths, and the
    DICOM it read). It is its own modality for the job worker's ``inputs_from_files``."""

    family = "imaging"
    input_contract = "files"
    kind = "binary"
    threshold = 0.5
    input_fields: list = []
    input_schema = {"kind": "image", "spatial_dims": 2, "channels": 1, "image_size": 28, "formats": ["png", "dicom"]}
    decision = {"rule": "fixed", "target": 0.5, "threshold": 0.5, "description": "fixed at 0.5"}
    conformal = None
    fast_records = False

    def __init__(self) -> None:
        from medai.tasks.kinds import TargetSpec

        self.seen: list[dict[str, Any]] = []
        self.target = TargetSpec("binary", "label", ["normal", "abnormal"], "abnormal")
        self.modality = self

    def _read(self, path: Path) -> dict[str, Any]:
        import pydicom

        from medai.privacy.dicom_deid import find_phi

        info: dict[str, Any] = {"path": str(path), "name": path.name, "bytes": path.read_bytes()}
        if path.suffix == ".dcm":
            ds = pydicom.dcmread(path, force=True)
            info["phi"] = find_phi(ds)
            info["identity_removed"] = str(ds.get("PatientIdentityRemoved", ""))
        self.seen.append(info)
        return info

    def predict_files(self, paths: list[Path], explain: bool, refuse_outside: bool = False,
                      observe=None) -> list[dict]:
        out = []
        for index, path in enumerate(paths):
            self._read(path)
            item = {"index": index, "probabilities": {"normal": 0.7, "abnormal": 0.3}, "label": "normal",
                    "probability": 0.3}
            if explain:
                item["explanation_png_base64"] = "iVBORw0KGgo="
            out.append(item)
        return out

    def inputs_from_files(self, paths: list[Path], model) -> list[Path]:
        for path in paths:
            self._read(path)
        return list(paths)

    def frame(self, inputs, explain: bool = False, refuse_outside: bool = False, observe=None):
        import pandas as pd

        return pd.DataFrame({inputs.id_name: inputs.ids, "probability": [0.3] * len(inputs.ids),
                             "label": ["normal"] * len(inputs.ids)})


@dataclass
class Service:
    app: Any
    http: Any
    keys: dict[str, str]
    key_ids: dict[str, str] = field(default_factory=dict)

    @property
    def state(self):
        return self.app.state.medai

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"} if role else {}

    def client(self, role: str):
        from medai.client import Client

        return Client(key=self.keys[role], http=self.http)


def start_service(settings=None, register: Path | None = None, name: str = "wdbc"):
    """(context manager, Service) — the app with one key per role and ``register`` registered as ``name``."""
    from fastapi.testclient import TestClient

    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    if register is not None:
        Registry().register(register, name=name)
    app = create_app(settings or Settings(job_poll_s=0.05, rate_limit=100_000))
    http = TestClient(app, raise_server_exceptions=False)
    return http, app


@pytest.fixture
def service(wdbc_artifact):
    http, app = start_service(register=wdbc_artifact)
    with http:
        keys, ids = {}, {}
        for role in ROLES:
            record, key = app.state.medai.keys.create(f"test-{role}", role)
            keys[role], ids[role] = key, record.key_id
        yield Service(app, http, keys, ids)


def flush_audit(svc: Service) -> None:
    svc.state.audit_sink.flush(timeout=10)
