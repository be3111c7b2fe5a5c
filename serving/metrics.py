"""Prometheus metrics of one app: latency per route, requests by status, served model versions, score spread.

Each app owns its registry (several apps in one test process must not collide); `/metrics` renders it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
SCORE_BUCKETS = tuple(round(x, 2) for x in np.linspace(0.05, 1.0, 20))


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "gridrisk_request_duration_seconds",
            "Request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "gridrisk_requests",
            "Requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "gridrisk_model_info",
            "1 for the model version each task serves",
            ["task", "name", "version", "source"],
            registry=self.registry,
        )
        self.snapshot_rows = Gauge(
            "gridrisk_snapshot_rows",
            "Customers in the served snapshot",
            ["task", "as_of"],
            registry=self.registry,
        )
        self.scores = Histogram(
            "gridrisk_score_probability",
            "Calibrated probabilities returned, by task and source (snapshot or live)",
            ["task", "source"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )

    def observe_scores(self, task: str, source: str, probabilities: list[float]) -> None:
        hist = self.scores.labels(task, source)
        for p in probabilities:
            hist.observe(p)

    def set_served(self, models: dict[str, Any], snapshots: dict[str, Any]) -> None:
        self.model_info.clear()
        for task, m in models.items():
            self.model_info.labels(task, m.name, m.version, m.source).set(1)
        self.snapshot_rows.clear()
        for task, s in snapshots.items():
            self.snapshot_rows.labels(task, s.as_of.isoformat()).set(s.size)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task switch) timing every HTTP request by its route template."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The lifespan builds the metrics after middleware is installed; the app in the scope holds them.
            metrics: ServiceMetrics = scope["app"].state.service.metrics
            route = scope.get("route")
            # path_format drops convertors (`{customer_id:customer_id}` reads `{customer_id}`): stable labels.
            template = getattr(route, "path_format", None) or "unmatched"
            method = scope.get("method", "")
            metrics.latency.labels(method, template).observe(time.perf_counter() - start)
            metrics.requests.labels(method, template, str(status["code"])).inc()
