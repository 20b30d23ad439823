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

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(1800)]  # a loaded 2-core machine starts Ray slowly


_START_FAILED: list[str] = []


@pytest.fixture(scope="module")
def cluster():
    """A head and one worker node started here; or, with ``MEDAI_TEST_RAY_ADDRESS``, a running local cluster of
    that shape (on a machine so loaded that Ray misses its own 30 s start-up window)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if _START_FAILED:  # one failed start is enough: do not try again for every test
        pytest.fail(_START_FAILED[0])
    given = os.environ.get("MEDAI_TEST_RAY_ADDRESS")
    if given:
        connect(given)
        yield type("Running", (), {"address": given})()
        ray.shutdown()
        return
    try:
        running = LocalCluster(head_cpus=1, workers=1, worker_cpus=1, object_store_mb=80).start()
    except MedAIError as exc:
        _START_FAILED.append(str(exc))
        raise
    try:
        connect(running.address)
        yield running
        ray.shutdown()
    finally:
        running.stop()


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
    assert len(got) == 1000 and list(got.columns) == list(expected.columns)
    # record by record, in input order (the probabilities differ from record to record)
    np.testing.assert_allclose(got["probability"].to_numpy(float), expected["probability"].to_numpy(float))
    assert got["label"].tolist() == expected["label"].tolist()
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


def test_image_folders_are_cut_into_a_few_units_per_worker(tmp_path):
    from types import SimpleNamespace

    from medai.scale.batch import input_units

    files = [tmp_path / f"img-{i:04d}.png" for i in range(4708)]
    model = SimpleNamespace(input_contract="files", modality=SimpleNamespace(input_files=lambda path: files))
    units = input_units(model, tmp_path, 4096, min_units=8)  # 2 workers, the CLI's default batch size
    sizes = [len(u["path"].split("\n")) for u in units]
    assert len(units) == 8 and sum(sizes) == 4708 and max(sizes) - min(sizes) <= 589 - 584
    assert "\n".join(u["path"] for u in units).split("\n") == [str(f) for f in files]  # every file once, in order
    assert [len(u["path"].split("\n")) for u in input_units(model, tmp_path, 128, min_units=8)][:2] == [128, 128]


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


def test_tune_searches_the_declared_space_and_trains_the_best_through_the_road(tmp_path, cluster):
    from medai.road import TrainOptions
    from medai.scale.tune import tune_and_train

    data = tmp_path / "risk.csv"
    risk_frame(240, seed=2).to_csv(data, index=False)
    options = TrainOptions(target="outcome", learner="logistic", cv="none", n_boot=100, show_progress=False)
    outcome = tune_and_train(None, data, options, tmp_path / "tuned", trials=4, objective="cv", folds=3,
                             storage=tmp_path / "tune", say=lambda _m: None)
    assert len(outcome.trials) == 4 and sum(r["default"] for r in outcome.trials) == 1
    assert outcome.trials[0]["config"] == {"C": 1.0}  # the default configuration is trial 0
    assert outcome.default_score is not None and outcome.best_score >= outcome.default_score
    assert all(r["finished"] or r["early_stopped"] for r in outcome.trials)
    model_json = json.loads((tmp_path / "tuned" / "model.json").read_text())
    assert "C" in str(model_json["hyperparameters"]["params"])
    metrics = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert metrics["tuning"]["best"] == outcome.best and metrics["tuning"]["trials"] == 4
    assert "Hyper-parameter search" in (tmp_path / "tuned" / "report.html").read_text()
    assert (tmp_path / "tuned" / "plots" / "tuning.png").is_file()


def test_distributed_training_on_two_workers_gives_a_working_model(tmp_path, cluster):
    pytest.importorskip("torch")
    from medai.modalities.imaging.classifier import ImageClassifier
    from medai.scale.distributed import RayTrainer

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 48)
    X = rng.random((96, 1, 16, 16), dtype=np.float32) * 0.6
    X[y == 1, :, 4:12, 4:12] += 0.4
    learner = ImageClassifier(network="small-cnn", epochs=3, batch_size=16, progress=False, patience=None,
                              num_threads=1, augment=False, warmup_epochs=0, lr=3e-3)
    # half a CPU each: the test cluster has two, and earlier tests' Ray Data actors may still hold part of one
    trainer = RayTrainer(workers=2, storage=tmp_path / "train", cpus_per_worker=0.5)
    fitted = trainer.fit(learner, X[:64], y[:64], X[64:], y[64:])
    assert fitted.training_["workers"] == 2 and len(fitted.history_) == 3
    proba = fitted.predict_proba(X[64:])
    assert proba.shape == (32, 2)
    from medai.evaluation.metrics import auroc

    assert auroc(y[64:], proba[:, 1]) > 0.9  # it learned the bright square
    assert list((tmp_path / "train").rglob("*.safetensors")) or list((tmp_path / "train").rglob("checkpoint*"))


def test_distributed_training_beyond_the_cluster_is_refused_not_left_waiting(tmp_path, cluster):
    from medai.modalities.imaging.classifier import ImageClassifier
    from medai.scale.distributed import RayTrainer

    X, y = np.zeros((8, 1, 16, 16), dtype=np.float32), np.array([0, 1] * 4)
    with pytest.raises(MedAIError, match="50 training workers need 50 free CPUs"):
        RayTrainer(workers=50, storage=tmp_path / "train").fit(ImageClassifier(network="small-cnn", epochs=1), X, y)


def test_serve_replicas_share_one_audit_chain_and_keep_auth(tmp_path, risk_model, cluster):
    import concurrent.futures

    import httpx

    from medai.privacy.audit import AuditLog
    from medai.registry import Registry
    from medai.scale.cluster import free_port
    from medai.scale.serve import deploy, shutdown
    from medai.serving.keys import KeyStore

    Registry().register(risk_model, name="risk")
    _, clinician = KeyStore().create("bench", "clinician")
    _, viewer = KeyStore().create("viewer", "viewer")
    url = deploy(replicas=2, host="127.0.0.1", port=free_port())
    try:
        records = risk_frame(20, seed=1).drop(columns=["outcome", "patient_id"]).to_dict("records")
        records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in records]
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(60):  # the replicas start while Serve answers 503 / connection errors
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                import time

                time.sleep(2)
            assert http.post("/v1/models/risk/predict", json={"records": records}).status_code == 401
            assert http.get("/v1/admin/keys", headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
            before = AuditLog().count()

            def one(_):
                return http.post("/v1/models/risk/predict", json={"records": records[:2]},
                                 headers={"Authorization": f"Bearer {clinician}"}).status_code

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(one, range(80)))
        assert codes.count(200) == 80
        import time

        deadline = time.monotonic() + 60
        while AuditLog().count() - before < 80 and time.monotonic() < deadline:  # rows written in the background
            time.sleep(0.5)
        assert AuditLog().count() - before >= 80  # one row per answered prediction, none lost
        result = AuditLog().verify()
        assert result.ok, result.reason
    finally:
        shutdown()
