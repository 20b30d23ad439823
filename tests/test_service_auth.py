# ruff: noqa: F811  -- pytest fixtures imported from test_service_support are used as parameters
"""Authentication and roles: the whole route table is walked; every route but /health needs a key, and
each role gets exactly its rights."""

from __future__ import annotations

import re

import pytest
from test_service_support import ROLES, service, wdbc_artifact, wdbc_rows  # noqa: F401

from medai.serving.app import iter_routes
from medai.serving.keys import role_allows

# route -> the permission it needs (the contract; a new route must be added here or the test fails)
EXPECTED = {
    ("GET", "/v1/models"): "models:read",
    ("GET", "/v1/models/{name}"): "models:read",
    ("GET", "/v1/models/{name}/versions/{version}/report"): "models:read",
    ("GET", "/v1/openapi.json"): "models:read",
    ("POST", "/v1/models/{name}/predict"): "predict",
    ("POST", "/v1/models/{name}/versions/{version}/predict"): "predict",
    ("POST", "/v1/jobs"): "jobs",
    ("GET", "/v1/jobs"): "jobs",
    ("GET", "/v1/jobs/{job_id}"): "jobs",
    ("GET", "/v1/jobs/{job_id}/result"): "jobs",
    ("POST", "/v1/fhir/RiskAssessment/$predict"): "predict",
    ("POST", "/v1/deid"): "predict",  # the text modality's router
    ("POST", "/v1/streams/{stream_id}/observations"): "predict",  # the longitudinal modality's router
    ("GET", "/v1/streams/{stream_id}"): "predict",
    ("POST", "/v1/admin/models"): "admin",
    ("PUT", "/v1/admin/models/{name}/versions/{version}/stage"): "admin",
    ("PUT", "/v1/admin/models/{name}/loinc-mapping"): "admin",
    ("POST", "/v1/admin/keys"): "admin",
    ("GET", "/v1/admin/keys"): "admin",
    ("DELETE", "/v1/admin/keys/{key_id}"): "admin",
    ("GET", "/v1/admin/audit"): "admin",
    ("GET", "/v1/admin/audit/verify"): "admin",
    ("POST", "/v1/models/{name}/outcomes"): "predict",  # monitoring: outcomes that arrive late
    ("GET", "/v1/models/{name}/monitoring"): "models:read",
    ("PUT", "/v1/admin/models/{name}/monitoring"): "admin",
    ("GET", "/metrics"): "models:read",  # Prometheus, behind a key
}
PUBLIC = {("GET", "/health")}


def _all_routes(app):
    """The API's routes and /metrics (the web page's routes at / have their own contract: tests/test_web_http.py)."""
    out = []
    for path, methods, _route in iter_routes(app):
        if not (path.startswith("/v1/") or path in ("/health", "/metrics")):
            continue
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            out.append((method, path))
    return out


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if m.group(0) == "{version}" else "wdbc", path)


def test_route_table_matches_contract(service):
    routes = set(_all_routes(service.app))
    assert routes == set(EXPECTED) | PUBLIC, "a route was added or removed: update EXPECTED with its permission"


def test_docs_are_not_public(service):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert service.http.get(path).status_code == 404
    assert service.http.get("/v1/openapi.json").status_code == 401
    doc = service.http.get("/v1/openapi.json", headers=service.headers("viewer")).json()
    assert "/v1/models/{name}/predict" in doc["paths"]


@pytest.mark.parametrize(
    "auth", [None, "Bearer", "Bearer nonsense", "Basic abc", "Bearer medai_000000000000_" + "A" * 43]
)
def test_every_route_rejects_requests_without_a_valid_key(service, auth):
    headers = {"Authorization": auth} if auth else {}
    for method, path in _all_routes(service.app):
        response = service.http.request(method, _concrete(path), headers=headers)
        if (method, path) in PUBLIC:
            assert response.status_code == 200
            continue
        assert response.status_code == 401, (method, path, response.status_code, response.text)
        assert response.headers.get("www-authenticate") == "Bearer"
        assert "Traceback" not in response.text


def test_each_role_gets_exactly_its_rights(service):
    """For every role x route: allowed -> never 401/403; not allowed -> 403."""
    for role in ROLES:
        for method, path in _all_routes(service.app):
            if (method, path) in PUBLIC:
                continue
            permission = EXPECTED[(method, path)]
            target = _concrete(path)
            if path.endswith("/keys/{key_id}"):
                target = "/v1/admin/keys/000000000000"  # never revoke the test's own keys
            response = service.http.request(method, target, headers=service.headers(role))
            if role_allows(role, permission):
                assert response.status_code not in (401, 403), (role, method, path, response.text)
            else:
                assert response.status_code == 403, (role, method, path, response.status_code)
                assert role in response.json()["detail"]


def test_explain_needs_explain_permission_and_revoked_key_is_refused(service, wdbc_rows):
    ok = service.http.post(
        "/v1/models/wdbc/predict?explain=true",
        json={"records": wdbc_rows[:1]},
        headers=service.headers("clinician"),
    )
    assert ok.status_code == 200 and ok.json()["predictions"][0]["contributions"]
    service.state.keys.revoke(service.key_ids["clinician"])
    again = service.http.get("/v1/models", headers=service.headers("clinician"))
    assert again.status_code == 401 and "revoked" in again.json()["detail"]


def test_expired_key_is_refused(service):
    from datetime import UTC, datetime, timedelta

    from medai.serving.keys import ApiKey

    record, key = service.state.keys.create("short", "viewer", expires_in_days=1)
    with service.state.keys._sessions.begin() as session:
        row = session.get(ApiKey, record.id)
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = service.http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_rate_limit_answers_429_with_retry_after(wdbc_artifact):
    from test_service_support import start_service

    from medai.serving.app import Settings

    http, app = start_service(Settings(rate_limit=3, rate_window_s=60, job_worker=False), register=wdbc_artifact)
    with http:
        _, key = app.state.medai.keys.create("burst", "viewer")
        codes = [http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        last = http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert int(last.headers["retry-after"]) >= 1
        assert http.get("/health").status_code == 200


def test_rate_limit_shared_through_redis(wdbc_artifact, redis_url, redis_prefix, monkeypatch):
    from test_service_support import start_service

    from medai.serving import ratelimit
    from medai.serving.app import Settings

    original = ratelimit.RateLimiter.from_url
    monkeypatch.setattr(
        ratelimit.RateLimiter,
        "from_url",
        staticmethod(lambda url, limit, window_s, **kw: original(url, limit, window_s, prefix=redis_prefix)),
    )
    settings = Settings(redis_url=redis_url, rate_limit=2, rate_window_s=30, job_worker=False)
    http1, app1 = start_service(settings, register=wdbc_artifact)
    http2, _app2 = start_service(settings)
    with http1, http2:
        _, key = app1.state.medai.keys.create("shared", "viewer")
        headers = {"Authorization": f"Bearer {key}"}
        codes = [
            http1.get("/v1/models", headers=headers).status_code,
            http2.get("/v1/models", headers=headers).status_code,
            http1.get("/v1/models", headers=headers).status_code,
        ]
        assert codes == [200, 200, 429]


def test_a_worker_over_its_in_flight_limit_sheds_with_429_audited_and_uncharged(wdbc_artifact):
    """Under overload a worker refuses at once what it cannot start (429, Retry-After 1, an audit row saying
    why) and the refusal does not use the key's rate budget; under the limit the same request is answered."""
    from test_service_support import start_service

    from medai.serving.app import Settings

    http, app = start_service(Settings(rate_limit=1, rate_window_s=60, max_in_flight=2, job_worker=False),
                              register=wdbc_artifact)
    with http:
        state = app.state.medai
        _, key = state.keys.create("busy", "viewer")
        headers = {"Authorization": f"Bearer {key}"}
        state.in_flight = 2  # two requests already in progress on this worker
        shed = http.get("/v1/models", headers=headers)
        assert shed.status_code == 429 and shed.headers["retry-after"] == "1"
        assert "at capacity" in shed.json()["detail"] and "limit 2" in shed.json()["detail"]
        assert state.in_flight == 2  # the shed request was counted while it ran, and only then
        state.in_flight = 1
        assert http.get("/v1/models", headers=headers).status_code == 200  # 2 in flight with it: within the limit
        assert http.get("/v1/models", headers=headers).status_code == 429  # now the key's own limit of 1
        assert "rate limit exceeded" in http.get("/v1/models", headers=headers).json()["detail"]
        assert http.get("/health").status_code == 200  # never shed
        state.audit_sink.flush(timeout=10)
        rows = [r for r in state.audit.export() if r["status_code"] == 429]
        assert rows and rows[0]["outcome"] == "denied"
        assert (rows[0].get("detail") or {}).get("reason") == "overloaded"


def test_in_flight_count_returns_to_zero_whatever_the_answer(service):
    http, keys, state = service.http, service.keys, service.app.state.medai
    assert state.settings.max_in_flight >= 4  # the default: four per core
    for path, headers in [("/v1/models", {"Authorization": f"Bearer {keys['viewer']}"}),  # 200
                          ("/v1/models", {}),  # 401
                          ("/v1/admin/keys", {"Authorization": f"Bearer {keys['viewer']}"}),  # 403
                          ("/v1/no/such/route", {"Authorization": f"Bearer {keys['viewer']}"})]:  # 404
        http.get(path, headers=headers)
        assert state.in_flight == 0


def test_no_in_flight_limit_when_set_to_zero(wdbc_artifact):
    from test_service_support import start_service

    from medai.serving.app import Settings

    http, app = start_service(Settings(rate_limit=100, max_in_flight=0, job_worker=False), register=wdbc_artifact)
    with http:
        state = app.state.medai
        _, key = state.keys.create("calm", "viewer")
        state.in_flight = 10_000
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
