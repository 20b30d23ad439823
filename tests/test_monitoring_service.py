"""Monitoring through the service: predictions with record ids are summarised (never stored raw), outcomes join
them by a keyed hash, the report shows drift and performance with plots, alerts are stored and posted to a
webhook, thresholds are per model, and /metrics needs a key."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from test_service_support import ROLES, start_service, wdbc_artifact, wdbc_rows  # noqa: F401

from medai.monitoring.store import MonitorBatch, MonitorPrediction


def _wdbc():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    X = data.frame.drop(columns=["target"])
    y = np.where(data.target == 0, "malignant", "benign")  # scikit-learn codes malignant as 0
    return X, y


@pytest.fixture
def svc(wdbc_artifact):  # noqa: F811
    from test_service_support import Service

    from medai.serving.app import Settings

    settings = Settings(job_worker=False, rate_limit=100_000, monitor_flush_s=0.05)
    http, app = start_service(settings, register=wdbc_artifact)
    with http:
        keys = {}
        for role in ROLES:
            _record, key = app.state.medai.keys.create(f"test-{role}", role)
            keys[role] = key
        yield Service(app, http, keys)


def _predict(svc, rows, ids=None):
    body = {"records": rows}
    if ids is not None:
        body["record_ids"] = ids
    return svc.http.post("/v1/models/wdbc/predict", json=body, headers=svc.headers("clinician"))


def _rows(frame):
    return [{k: float(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _everything_stored(svc) -> str:
    from sqlalchemy import select

    from medai.db import session_factory

    with session_factory()() as session:
        batches = session.execute(select(MonitorBatch)).scalars().all()
        preds = session.execute(select(MonitorPrediction)).scalars().all()
    return json.dumps([b.summary for b in batches] + [[p.record_key, p.score, p.answer, p.embedding, p.outcome]
                                                       for p in preds])


def test_predictions_are_summarised_outcomes_join_and_the_report_flags_a_shift(svc):
    X, y = _wdbc()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    first, second = order[:240], order[240:480]
    ids = [f"MRN-{i:06d}" for i in range(len(X))]
    for start in range(0, len(first), 60):
        chunk = first[start:start + 60]
        answer = _predict(svc, _rows(X.iloc[chunk]), [ids[i] for i in chunk])
        assert answer.status_code == 200, answer.text
        svc.state.recorder.flush()  # one stored batch per request (the recorder merges those of about a second)
    shifted = X.copy()
    shifted["mean radius"] *= 1.6  # a unit or assay change on one feature
    shifted["worst texture"] += 8.0
    for start in range(0, len(second), 60):
        chunk = second[start:start + 60]
        assert _predict(svc, _rows(shifted.iloc[chunk]), [ids[i] for i in chunk]).status_code == 200
        svc.state.recorder.flush()

    # nothing stored holds an input value or a record id in clear
    stored = _everything_stored(svc)
    assert "MRN-" not in stored
    assert f"{X.iloc[first[0]]['mean area']:.4f}" not in stored

    # outcomes: the first half's true labels, some unknown ids, one value that is not a class
    outcomes = [{"record_id": ids[i], "outcome": str(y[i])} for i in first] + [
        {"record_id": "never-seen", "outcome": "benign"}]
    answer = svc.http.post("/v1/models/wdbc/outcomes", json={"outcomes": outcomes}, headers=svc.headers("clinician"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 241, "distinct": 241, "matched": 240, "unmatched": 1}
    bad = svc.http.post("/v1/models/wdbc/outcomes", json={"outcomes": [{"record_id": ids[0], "outcome": "maybe"}]},
                        headers=svc.headers("clinician"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "outcomes", 0, "outcome"]
    assert svc.http.post("/v1/models/wdbc/outcomes", json={"outcomes": outcomes},
                         headers=svc.headers("viewer")).status_code == 403

    svc.http.put("/v1/admin/models/wdbc/monitoring", json={"window": 120, "outcome_window": 120, "min_outcomes": 60},
                 headers=svc.headers("admin")).raise_for_status()
    report = svc.http.get("/v1/models/wdbc/monitoring", headers=svc.headers("viewer"))
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["counts"] == {"served": 480, "with_outcome": 240}
    first_window, last_window = body["drift"][0], body["drift"][-1]
    assert not first_window["drifted"], first_window["drifted"]  # unshifted records: no alarm
    assert "features:mean radius" in last_window["drifted"] and "features:worst texture" in last_window["drifted"]
    assert body["status"]["drift"] is True
    perf = body["performance"][-1]
    assert perf["n"] == 120 and 0.9 < perf["metrics"]["auroc"]["value"] <= 1.0
    assert perf["coverage"]["ci_low"] <= perf["coverage"]["value"] <= perf["coverage"]["ci_high"]
    assert set(body["plots"]) == {"drift", "performance"}
    alerts = body["alerts"]
    assert any(a["subject"] == "features:mean radius" and a["category"] == "drift" for a in alerts)
    # alerts are stored once per window: asking again adds none
    again = svc.http.get("/v1/models/wdbc/monitoring?plots=false", headers=svc.headers("viewer")).json()
    assert again["new_alerts"] == [] and len(again["alerts"]) == len(alerts) and "plots" not in again


def test_performance_decay_alert_when_outcomes_contradict_the_model(svc):
    X, y = _wdbc()
    rows = _rows(X.iloc[:200])
    ids = [f"enc{i}" for i in range(200)]
    assert _predict(svc, rows, ids).status_code == 200
    svc.state.recorder.flush()
    flipped = np.where(y[:200] == "malignant", "benign", "malignant")  # the model is now wrong on every record
    outcomes = [{"record_id": rid, "outcome": str(v)} for rid, v in zip(ids, flipped, strict=True)]
    svc.http.post("/v1/models/wdbc/outcomes", json={"outcomes": outcomes},
                  headers=svc.headers("clinician")).raise_for_status()
    svc.http.put("/v1/admin/models/wdbc/monitoring", json={"outcome_window": 200, "min_outcomes": 50},
                 headers=svc.headers("admin")).raise_for_status()
    body = svc.http.get("/v1/models/wdbc/monitoring?plots=false", headers=svc.headers("viewer")).json()
    subjects = {a["subject"] for a in body["alerts"] if a["category"] == "performance"}
    assert {"auroc", "coverage"} <= subjects
    assert body["status"]["performance_alert"] is True


def test_record_ids_must_match_the_records_and_settings_are_checked(svc, wdbc_rows):  # noqa: F811
    answer = _predict(svc, wdbc_rows, ["a", "b"])
    assert answer.status_code == 422 and "record_ids" in answer.json()["detail"]
    bad = svc.http.put("/v1/admin/models/wdbc/monitoring", json={"fdr": 2}, headers=svc.headers("admin"))
    assert bad.status_code == 422
    unknown = svc.http.put("/v1/admin/models/nope/monitoring", json={"fdr": 0.1}, headers=svc.headers("admin"))
    assert unknown.status_code == 404
    assert svc.http.put("/v1/admin/models/wdbc/monitoring", json={"fdr": 0.1},
                        headers=svc.headers("clinician")).status_code == 403


def test_metrics_need_a_key_and_count_requests(svc, wdbc_rows):  # noqa: F811
    assert svc.http.get("/metrics").status_code == 401
    assert _predict(svc, wdbc_rows).status_code == 200
    answer = svc.http.get("/metrics", headers=svc.headers("viewer"))
    assert answer.status_code == 200
    text = answer.text
    assert 'medai_requests_total{method="POST",pid=' in text
    assert 'route="/v1/models/{name}/predict"' in text
    assert "medai_predictions_total" in text and "medai_request_seconds_bucket" in text


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_new_alerts_are_posted_to_the_webhook(svc):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/alerts"
        svc.http.put("/v1/admin/models/wdbc/monitoring", json={"window": 100, "webhook": url},
                     headers=svc.headers("admin")).raise_for_status()
        X, _ = _wdbc()
        shifted = X.iloc[:150].copy()
        shifted["mean texture"] *= 2.0
        assert _predict(svc, _rows(shifted)).status_code == 200
        svc.state.recorder.flush()
        svc.state.recorder.check_now()  # what the background check does every MEDAI_MONITOR_CHECK_S
        assert _Hook.received, "no alert reached the webhook"
        alerts = _Hook.received[-1]["alerts"]
        assert any(a["subject"] == "features:mean texture" for a in alerts)
    finally:
        server.shutdown()


def test_batch_jobs_are_monitored_too(wdbc_artifact, wdbc_rows, tmp_path):  # noqa: F811
    import pandas as pd
    from test_service_support import Service

    from medai.client import Client
    from medai.serving.app import Settings

    http, app = start_service(Settings(job_poll_s=0.05, rate_limit=100_000, monitor_flush_s=0.05),
                              register=wdbc_artifact)
    with http:
        _record, key = app.state.medai.keys.create("c", "clinician")
        svc = Service(app, http, {"clinician": key})
        pd.DataFrame(wdbc_rows).to_csv(tmp_path / "batch.csv", index=False)
        client = Client(key=key, http=http)
        info = client.submit_job("wdbc", tmp_path / "batch.csv")
        assert client.wait_job(info["id"], timeout=60)["status"] == "done"
        svc.state.recorder.flush()
        counts = svc.state.monitor_store.counts("wdbc", 1)
        assert counts["served"] == len(wdbc_rows)
