"""Scale-out on a real local Ray cluster (a head and one extra worker node, each its own ``ray start`` process
on loopback, dashboard and usage stats off): the same numbers as the sequential run, batch inference in input
order with no partial output, and the CLI's ``--ray``. One cluster for the whole module (it takes a while to
start on a loaded machine)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from helpers import risk_frame, train_frame

ray = pytest.importorskip("ray")

from medai.cli import app  # noqa: E402
from medai.errors import MedAIError  # noqa: E402
from medai.parallel import parallel_map, using  # noqa: E402
from medai.scale.cluster import LocalCluster, connect, resolve_address  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with LocalCluster(head_cpus=1, workers=1, worker_cpus=1, object_store_mb=80) as running:
        connect(running.address)
        yield running
        ray.shutdown()


@pytest.fixture(scope="module")
def risk_model(tmp_path_factory, cluster):
    out = tmp_path_factory.mktemp("risk") / "model"
    from medai.parallel import SEQUENTIAL

    with using(SEQUENTIAL):
        train_frame(risk_frame(300), out, learner="logistic", cv="none", n_boot=200)
    return out


def _ray_executor():
    from medai.scale.executor import RayExecutor

    return RayExecutor()


def test_cluster_has_two_nodes_and_tasks_run_on_both(cluster):
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert len(nodes) == 2
    assert ray.cluster_resources()["CPU"] == 2

    def where(_):
        import time

        time.sleep(0.5)
        return ray.get_runtime_context().get_node_id()

    with using(_ray_executor()):
        seen = set(parallel_map(where, range(6)))
    assert len(seen) == 2


def test_cross_validation_on_ray_gives_the_sequential_figures(tmp_path, cluster):
    frame = risk_frame(240, seed=3)
    sequential = train_frame(frame, tmp_path / "seq", learner="logistic", cv="3x2", n_boot=200, seed=7)
    with using(_ray_executor()) as executor:
        assert executor.workers == 2
        on_ray = train_frame(frame, tmp_path / "ray", learner="logistic", cv="3x2", n_boot=200, seed=7)
    assert sequential.metrics["cv"] and sequential.metrics["cv"] == on_ray.metrics["cv"]
    assert sequential.metrics["test"] == on_ray.metrics["test"]  # bootstrap replicates fanned out too
    assert sequential.metrics["conformal"] == on_ray.metrics["conformal"]


def test_bootstrap_replicates_on_ray_equal_the_sequential_ones(cluster):
    from medai.evaluation.bootstrap import bootstrap_metrics
    from medai.evaluation.metrics import binary_metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)

    def compute(i):
        return binary_metrics(y[i], p[i], 0.5)

    sequential = bootstrap_metrics(compute, y, n_boot=300, seed=11)
    with using(_ray_executor()):
        on_ray = bootstrap_metrics(compute, y, n_boot=300, seed=11)
    assert sequential == on_ray
    assert sequential != bootstrap_metrics(compute, y, n_boot=300, seed=12)  # the seed matters: not a constant


def test_batch_inference_equals_predict_in_order(tmp_path, risk_model, cluster):
    from medai.road import load_model
    from medai.scale.batch import predict_batches

    frame = risk_frame(1000, seed=5).drop(columns=["outcome"])
    source = tmp_path / "records.parquet"
    frame.to_parquet(source)
    output = tmp_path / "predictions.parquet"
    result = predict_batches(risk_model, None, source, output, batch_size=128)
    assert result.rows == 1000 and result.batches >= 8 and result.workers == 2
    got = pd.read_parquet(output)
    expected = load_model(risk_model).predict_table(frame)
    assert got["patient_id"].tolist() == frame["patient_id"].tolist()
    np.testing.assert_allclose(got["probability"].to_numpy(float), expected["probability"].to_numpy(float))
    assert got["prediction"].tolist() == expected["prediction"].tolist()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_batch_inference_of_a_bad_table_fails_clearly_and_leaves_no_output(tmp_path, risk_model, cluster):
    from medai.scale.batch import predict_batches

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"age": ["old"] * 50, "systolic_bp": [120] * 50}).to_csv(bad, index=False)
    output = tmp_path / "out.csv"
    with pytest.raises(MedAIError) as info:
        predict_batches(risk_model, None, bad, output, batch_size=16)
    assert "no output" in str(info.value) or "smoker" in str(info.value) or "age" in str(info.value)
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_shipped_artifact_is_checked_on_the_worker(tmp_path, risk_model):
    from medai.errors import IntegrityError
    from medai.scale.batch import ShippedArtifact

    shipped = ShippedArtifact.read(risk_model)
    tampered = dict(shipped.files)
    tampered["model.json"] = tampered["model.json"].replace(b'"name"', b'"nAme"', 1)
    with pytest.raises(IntegrityError):
        ShippedArtifact(tampered, shipped.manifest).materialize(tmp_path / "worker")


def test_cli_train_and_predict_with_ray(tmp_path, risk_model, cluster, capsys, monkeypatch):
    from medai.cli import main

    data = tmp_path / "risk.csv"
    risk_frame(200, seed=9).to_csv(data, index=False)
    monkeypatch.setattr("sys.argv", ["medai", "train", "--data", str(data), "--target", "outcome", "--learner",
                                     "logistic", "--cv", "3x1", "--out", str(tmp_path / "m"), "--no-register",
                                     "--json", "--ray", cluster.address])
    main()
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics["cv"]) and metrics["cv"]["auroc"]["mean"] > 0.6
    monkeypatch.setenv("MEDAI_RAY_ADDRESS", cluster.address)  # the environment names the cluster too
    records = tmp_path / "records.csv"
    risk_frame(300, seed=4).drop(columns=["outcome"]).to_csv(records, index=False)
    monkeypatch.setattr("sys.argv", ["medai", "predict", str(risk_model), str(records), "-o",
                                     str(tmp_path / "p.csv"), "--batch-size", "100"])
    main()
    assert "300 predictions written" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 300
    assert ray.is_initialized()  # a connection the caller made is left open


def test_bad_ray_address_is_a_usage_error():
    with pytest.raises(MedAIError, match="HOST:PORT"):
        resolve_address("nowhere")
    assert resolve_address(None) is None or os.environ.get("MEDAI_RAY_ADDRESS")
    assert app is not None
