"""The service's streams: a stay replayed hour by hour through POST /v1/streams/{id}/observations gets the same
risks as the offline replay; alerts fire once per crossing and are audited; bad batches are refused or flagged and
nothing stored is lost; no stream endpoint answers without a key."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_cli import run
from test_longitudinal import synthetic_cohort

from medai.modalities.longitudinal.early_warning import alert_hours, trajectories
from medai.modalities.longitudinal.reading import read_stays


@pytest.fixture
def service(tmp_path, capsys):
    from medai.registry import Registry
    from medai.serving.app import Settings, create_app

    events, labels = synthetic_cohort(120, seed=3)
    events.to_csv(tmp_path / "events.csv", index=False)
    labels.to_csv(tmp_path / "labels.csv", index=False)
    code, _, err = run(["train", "--data", tmp_path / "events.csv", "--labels", tmp_path / "labels.csv", "--target",
                        "died", "--window-hours", "48", "--out", tmp_path / "m", "--cv", "none", "--no-register"],
                       capsys)
    assert code == 0, err
    Registry().register(tmp_path / "m", name="icu-risk")
    app = create_app(Settings(job_poll_s=0.05, rate_limit=100_000))
    with TestClient(app, raise_server_exceptions=False) as http:
        _, key = app.state.medai.keys.create("c", "clinician")
        yield http, {"Authorization": f"Bearer {key}"}, app, events, tmp_path


def test_a_stay_replayed_through_the_service_matches_the_offline_replay(service):
    from medai.road import load_model

    http, auth, app, events, tmp_path = service
    model = load_model(tmp_path / "m")
    stays = read_stays(tmp_path / "events.csv", window_hours=48.0).stays
    hours, risk = trajectories(model, stays)
    threshold = model.threshold
    # a stay whose risk crosses the threshold during the replay
    crossing = [i for i in range(len(stays)) if risk[i, 0] < threshold and np.nanmax(risk[i]) >= threshold]
    i = crossing[0] if crossing else int(np.argmax(np.nanmax(risk, axis=1)))
    stay = events[events.stay_id == stays.ids[i]]
    answers = {}
    for h in hours:
        batch = stay[(stay.time > h - 1) & (stay.time <= h)] if h > 1 else stay[stay.time <= h]
        if batch.empty:
            continue
        body = {"batch_id": f"b{int(h)}", "model": "icu-risk", "hour": float(h),
                "observations": [{"time": float(r.time), "variable": r.variable, "value": float(r.value)}
                                 for r in batch.itertuples()]}
        response = http.post("/v1/streams/bed-7/observations", json=body, headers=auth)
        assert response.status_code == 200, response.text
        answers[h] = response.json()
        assert "prediction_set" in answers[h]["prediction"]
    offline = dict(zip(hours, risk[i], strict=True))
    assert np.allclose([a["risk"] for a in answers.values()], [offline[h] for h in answers], atol=1e-6)
    expected_alerts = [h for h in alert_hours(np.array(list(answers)), np.array([[a["risk"] for a in
                                                                                  answers.values()]]), threshold)[0]]
    fired = [h for h, a in answers.items() if a["alert"]]
    assert fired == expected_alerts and len(fired) >= 1

    got = http.get("/v1/streams/bed-7", headers=auth).json()
    assert [p["hour"] for p in got["trajectory"]] == list(answers) and [a["hour"] for a in got["alerts"]] == fired
    again = http.post("/v1/streams/bed-7/observations", json={"batch_id": "b1", "observations": [
        {"time": 0.5, "variable": "HR", "value": 80}]}, headers=auth)
    assert again.status_code == 200 and again.json()["replayed"] is True  # idempotent: nothing appended
    assert http.get("/v1/streams/bed-7", headers=auth).json()["observations"] == got["observations"]

    app.state.medai.audit_sink.flush(timeout=10)
    rows = [r for r in app.state.medai.audit.export() if r["action"] == "stream_observations"]
    assert sum(bool((r.get("detail") or {}).get("alert")) for r in rows) == len(fired)


def test_bad_batches_are_refused_or_flagged_and_keys_are_required(service):
    http, auth, _, _, _ = service
    first = {"batch_id": "a", "model": "icu-risk", "observations": [
        {"time": 5.0, "variable": "HR", "value": 90}, {"time": 5.0, "variable": "Shoe size", "value": 44},
        {"time": 5.5, "variable": "HR", "value": 900}]}
    answer = http.post("/v1/streams/p-1/observations", json=first, headers=auth)
    assert answer.status_code == 200, answer.text
    reasons = {f["variable"]: f["reason"] for f in answer.json()["flagged"]}
    assert "unknown variable" in reasons["Shoe size"] and "physiologically possible" in reasons["HR"]
    late = http.post("/v1/streams/p-1/observations", headers=auth, json={
        "batch_id": "b", "observations": [{"time": 2.0, "variable": "HR", "value": 85}]})
    assert late.status_code == 422 and "time order" in late.json()["detail"]
    assert http.get("/v1/streams/p-1", headers=auth).json()["observations"] == 3  # nothing lost, nothing added
    for body, where in (({"batch_id": "c", "observations": []}, "observations"),
                        ({"batch_id": "d", "observations": [{"time": 1, "variable": "HR"}]}, "value")):
        response = http.post("/v1/streams/p-1/observations", json=body, headers=auth)
        assert response.status_code == 422 and where in response.text
    new = http.post("/v1/streams/p-2/observations", headers=auth, json={
        "batch_id": "x", "observations": [{"time": 1.0, "variable": "HR", "value": 85}]})
    assert new.status_code == 422 and "name its model" in new.json()["detail"]
    assert http.post("/v1/streams/John Smith/observations", headers=auth, json=first).status_code in (404, 422)
    assert http.get("/v1/streams/nobody", headers=auth).status_code == 404
    assert http.get("/v1/streams/p-1").status_code == 401
    assert http.post("/v1/streams/p-1/observations", json=first).status_code == 401
