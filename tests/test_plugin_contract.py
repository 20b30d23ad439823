"""The plug-in contract: a toy modality, written here and registered once, walks the whole road - trained from
the CLI, predicted, evaluated, explained, served through /v1/models/{name}/predict and a batch job - without any
other file knowing it. docs/architecture.md shows the same class as its worked example."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from test_cli import run

from medai.data.dataset import Dataset, Inputs
from medai.modalities import RECORDS, Modality, list_modalities, register_modality, unregister_modality

ROOT = Path(__file__).resolve().parents[1]


class ToyModality(Modality):
    """One measurement per record, in CSV files ending in .toy."""

    name = "toy"
    description = "one measurement per record (files ending in .toy)"
    input_contract = RECORDS
    default_learner = "logistic"

    def claims(self, path, options):
        return 2 if path.suffix == ".toy" else 0

    def read_training_data(self, path, options):
        frame = pd.read_csv(path)
        return Dataset(X=frame[["x"]].to_numpy(float), y=frame[options.target], target_column=options.target,
                       input_schema={"fields": [{"name": "x", "kind": "numeric"}]}, source=str(path))

    def read_inputs(self, path, model, labelled=False, options=None):
        frame = pd.read_csv(path)
        y = frame[model.target.column] if labelled else None
        return Inputs(frame[["x"]].to_numpy(float), frame["id"].tolist(), "id", y)

    def inputs_from_records(self, records, model):
        return np.array([[float(r["x"])] for r in records])

    def learners(self, kind):
        return ("logistic",)

    def make_learner(self, name, target, options, task, dataset):
        return LogisticRegression()

    def explain(self, model, X, top_k=5):
        weight = float(model.learner.coef_[0, 0])
        return [{"summary": f"x={x[0]:+.2f}", "explains": "log-odds",
                 "contributions": [{"feature": "x", "value": float(x[0]), "contribution": weight * x[0]}]} for x in X]


@pytest.fixture
def toy():
    modality = register_modality(ToyModality())
    yield modality
    unregister_modality("toy")


def toy_files(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(300)], "x": x,
                          "sick": np.where(rng.random(300) < 1 / (1 + np.exp(-2 * x)), "yes", "no")})
    frame.to_csv(root / "train.toy", index=False)
    frame.drop(columns="sick").head(5).to_csv(root / "new.toy", index=False)
    return root / "train.toy", root / "new.toy"


def test_a_new_modality_walks_the_whole_road(toy, tmp_path, capsys):
    train, new = toy_files(tmp_path)
    code, stdout, err = run(["train", "--data", train, "--target", "sick", "--out", tmp_path / "m", "--cv", "3x1",
                             "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["kind"] == "binary" and metrics["test"]["auroc"]["value"] > 0.7 and metrics["cv"]["auroc"]
    assert json.loads((tmp_path / "m/model.json").read_text())["modality"] == "toy"
    assert metrics["conformal"]["coverage"]["value"] is not None
    assert "conformal" in (tmp_path / "m/report.html").read_text()

    code, _, err = run(["predict", tmp_path / "m", new, "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns) == ["id", "probability", "label", "prediction_set", "uncertain", "explanation"]
    assert table["id"].tolist() == ["r0", "r1", "r2", "r3", "r4"]
    code, stdout, err = run(["evaluate", tmp_path / "m", "--data", train, "--json"], capsys)
    assert code == 0 and json.loads(stdout)["test"]["auroc"]["value"] > 0.7, err
    code, stdout, err = run(["explain", tmp_path / "m", new, "--json"], capsys)
    assert code == 0 and json.loads(stdout)[0]["contributions"][0]["feature"] == "x", err

    from fastapi.testclient import TestClient

    from medai.client import Client
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    Registry().register(tmp_path / "m", name="toy-model")
    app = create_app(Settings(job_poll_s=0.05, rate_limit=100_000))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        client = Client(key=key, http=http)
        assert client.model("toy-model")["input_kind"] == "records"
        answer = client.predict("toy-model", [{"x": 1.5}, {"x": -2.0}], explain=True)
        first, second = answer["predictions"]
        assert first["probability"] > 0.5 > second["probability"] and first["contributions"][0]["feature"] == "x"
        assert answer["kind"] == "binary" and "prediction_set" in first
        (tmp_path / "batch.csv").write_text(new.read_text())
        job = client.submit_job("toy-model", tmp_path / "batch.csv")
        assert client.wait_job(job["id"], timeout=30)["status"] == "done"
        result = pd.read_csv(__import__("io").StringIO(client.job_result(job["id"])))
        assert result["id"].tolist() == ["r0", "r1", "r2", "r3", "r4"]
        assert np.allclose(result["probability"], table["probability"])


ROAD_PACKAGES = ("cli.py", "cli_models.py", "cli_explain.py", "cli_service.py", "road", "serving", "evaluation",
                 "registry", "tasks", "models", "data")


def road_sources() -> list[Path]:
    src = ROOT / "src" / "medai"
    files = []
    for part in ROAD_PACKAGES:
        path = src / part
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def test_no_modality_branches_on_the_road():
    """The CLI, the service, the road, the evaluators, the registry and the data layer never compare anything with
    a modality's name: they ask the modality registry. (Dataset specs may *name* their modality.)"""
    names = {m.name for m in list_modalities()} | {"toy"}
    offenders = []
    for path in road_sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for operand in operands:
                    values = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                    if any(isinstance(v, ast.Constant) and v.value in names for v in values):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_architecture_doc_shows_this_example():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    source = inspect.getsource(ToyModality)
    assert any(source.strip() in block for block in blocks), "docs/architecture.md must show ToyModality as is"
