"""Prometheus metrics of the service (``GET /metrics``, behind an API key with ``models:read``).

Request counts and latencies by route template, method and status (the route template, never the path: no
identifiers in labels), errors, predictions served, monitoring records dropped, and per model version the latest
window's drift scores (largest feature PSI, prediction PSI, embedding MMD p-value, drifted columns) and open
alerts. Each worker process keeps its own counters (label ``pid``); scrape every worker, or run one.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        pid = ("pid",)
        self.pid = str(os.getpid())
        self.requests = Counter("medai_requests", "HTTP requests answered", ("route", "method", "status", *pid),
                                registry=self.registry)
        self.latency = Histogram("medai_request_seconds", "time to answer a request", ("route", "method", *pid),
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                          60), registry=self.registry)
        self.errors = Counter("medai_request_errors", "requests answered 5xx", ("route", *pid), registry=self.registry)
        self.predictions = Counter("medai_predictions", "records predicted", ("model", *pid), registry=self.registry)
        self.monitor_dropped = Counter("medai_monitor_dropped_records", "records not monitored (queue full)", pid,
                                       registry=self.registry).labels(self.pid)
        labels = ("model", "version")
        self.feature_psi = Gauge("medai_drift_feature_psi_max", "largest feature PSI in the latest window", labels,
                                 registry=self.registry)
        self.prediction_psi = Gauge("medai_drift_prediction_psi", "PSI of the prediction summary, latest window",
                                    labels, registry=self.registry)
        self.embedding_p = Gauge("medai_drift_embedding_p", "MMD permutation p-value of the representation", labels,
                                 registry=self.registry)
        self.drifted = Gauge("medai_drift_columns", "columns called drifted in the latest window", labels,
                             registry=self.registry)
        self.alerts = Gauge("medai_monitor_alerts", "alerts raised on the latest windows", labels,
                            registry=self.registry)

    def predictions_of(self, name: str, n: int = 1) -> None:
        self.predictions.labels(name, self.pid).inc(n)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status), self.pid).inc()
        self.latency.labels(route, method, self.pid).observe(seconds)
        if status >= 500:
            self.errors.labels(route, self.pid).inc()

    def update_drift(self, name: str, version: int, report: dict[str, Any]) -> None:
        labels = (name, str(version))
        window = report["drift"][-1] if report.get("drift") else None
        if window is not None:
            for gauge, value in ((self.feature_psi, window.get("max_feature_psi")),
                                 (self.prediction_psi, window.get("prediction_psi")),
                                 (self.embedding_p, window.get("embedding_p"))):
                if value is not None:
                    gauge.labels(*labels).set(value)
            self.drifted.labels(*labels).set(len(window["drifted"]))
        self.alerts.labels(*labels).set(len(report.get("status", {}).get("current_alerts", [])))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every HTTP request by route template (from the audit box the auth layer fills) and times it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            box = scope.get("medai.audit") or {}
            route = box.get("route") or ("/health" if scope.get("path") == "/health" else "(other)")
            self.metrics.observe_request(str(route), str(scope.get("method")), status["code"],
                                         time.perf_counter() - start)
