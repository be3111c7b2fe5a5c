"""Prometheus metrics of one app: latency per route, requests by status, served model versions, score spread.

Each app owns its registry (several apps in one test process must not collide); `/metrics` renders it.
Under `gridrisk serve --workers N` every worker writes its values to files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode, chosen when the package is imported) and `/metrics` merges the
workers' files, whichever worker takes the scrape: before, each answered with its own counts.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from serving.access import CLIENT

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# A shared file cannot forget a series, so a worker marks one it no longer serves with this value (a count
# or an info flag is never negative), and the merged answer leaves it out, as one worker's `remove` would.
GONE = -1.0

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
SCORE_BUCKETS = tuple(round(x, 2) for x in np.linspace(0.05, 1.0, 20))


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.shared_dir = shared_metrics_dir()
        own = None if self.shared_dir else self.registry  # shared: values go to files, read back on render
        self.latency = Histogram(
            "gridrisk_request_duration_seconds",
            "Request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.requests = Counter(
            "gridrisk_requests",
            "Requests by route and status",
            ["method", "route", "status"],
            registry=own,
        )
        self.model_info = Gauge(
            "gridrisk_model_info",
            "1 for the model version each task serves",
            ["task", "name", "version", "source"],
            registry=own,
            multiprocess_mode="livemax",  # served by any live worker: a swap shows both until all have moved
        )
        self.snapshot_rows = Gauge(
            "gridrisk_snapshot_rows",
            "Customers in the served snapshot",
            ["task", "as_of"],
            registry=own,
            multiprocess_mode="livemax",
        )
        self._shown: dict[Gauge, set[tuple[str, ...]]] = {}
        self.scores = Histogram(
            "gridrisk_score_probability",
            "Calibrated probabilities returned, by task and source (snapshot or live)",
            ["task", "source"],
            buckets=SCORE_BUCKETS,
            registry=own,
        )

        # Read when scraped, from the scraping worker (every worker serves the same home and follows reloads):
        # what an operator alerts on. Set by `watch`; a test's bare metrics have none.
        self._state: Callable[[], Any] | None = None
        if not self.shared_dir:
            # process_* (memory, CPU, open files, start time) of the one process. With several workers each
            # is its own process and a scrape reaches one of them: the host's per-service figures (systemd's
            # cgroup, node_exporter) are the ones to read there.
            ProcessCollector(registry=self.registry)

    def watch(self, state: Callable[[], Any]) -> None:
        """`state()` returns (readiness, snapshots loaded): the ReadyResponse `/ready` answers, and task ->
        snapshot. Rendered as gauges on every scrape."""
        self._state = state

    def observe_scores(self, task: str, source: str, probabilities: list[float]) -> None:
        hist = self.scores.labels(task, source)
        for p in probabilities:
            hist.observe(p)

    def set_served(self, models: dict[str, Any], snapshots: dict[str, Any]) -> None:
        self._replace(self.model_info, {(t, m.name, m.version, m.source): 1 for t, m in models.items()})
        self._replace(self.snapshot_rows, {(t, s.as_of.isoformat()): s.size for t, s in snapshots.items()})

    def _replace(self, gauge: Gauge, series: dict[tuple[str, ...], float]) -> None:
        """The gauge holds exactly `series`: others are removed (in shared files, marked GONE)."""
        shown: set[tuple[str, ...]] = self._shown.setdefault(gauge, set())
        for labels in shown - series.keys():
            if self.shared_dir:
                gauge.labels(*labels).set(GONE)
            else:
                gauge.remove(*labels)
        for labels, value in series.items():
            gauge.labels(*labels).set(value)
        self._shown[gauge] = set(series)

    def render(self) -> bytes:
        status = _Status(self._state) if self._state is not None else None
        if not self.shared_dir:
            if status is None:
                return generate_latest(self.registry)
            return generate_latest(_Joined(self.registry, status))
        forget_dead_workers(self.shared_dir)
        merged = CollectorRegistry()
        merged.register(_WithoutGone(MultiProcessCollector(None, path=self.shared_dir)))
        if status is not None:
            merged.register(status)
        return generate_latest(merged)


READY_VALUES = {"not_ready": 0.0, "degraded": 1.0, "ready": 2.0}


class _Status:
    """Gauges of what `/ready` says, read when scraped: `gridrisk_ready` (2 ready, 1 degraded, 0 not_ready),
    one 0/1 gauge per check, and each task's snapshot date as a Unix time, so "the snapshot is older than 40
    days" can be an alert (the date was only a label of `gridrisk_snapshot_rows`)."""

    def __init__(self, state: Callable[[], Any]) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        ready, snapshots = self.state()
        yield GaugeMetricFamily(
            "gridrisk_ready",
            "What /ready says: 2 ready, 1 degraded (a task lacks a registry model or a matching snapshot, "
            "or names), 0 not_ready (503)",
            value=READY_VALUES[ready.status],
        )
        for name, value, text in (
            ("gridrisk_registry_reachable", ready.registry_reachable, "1 when the model registry answered"),
            ("gridrisk_keys_readable", ready.keys_readable, "1 when the API keys can be read"),
            ("gridrisk_home_writable", ready.home_writable, "1 when the home and audit log can be written"),
        ):
            yield GaugeMetricFamily(name, text, value=float(value))
        as_of = GaugeMetricFamily(
            "gridrisk_snapshot_as_of_timestamp_seconds",
            "The served snapshot's as-of date (00:00 UTC) as a Unix time",
            labels=["task"],
        )
        for task, snapshot in sorted(snapshots.items()):
            midnight = dt.datetime.combine(snapshot.as_of, dt.time(), tzinfo=dt.UTC)
            as_of.add_metric([task], midnight.timestamp())
        yield as_of


class _Joined:
    """A registry and one more collector, rendered together."""

    def __init__(self, registry: CollectorRegistry, extra: _Status) -> None:
        self.registry, self.extra = registry, extra

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.extra.collect()


def shared_metrics_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR when this process writes its metrics there. The variable alone is not enough:
    prometheus_client picks its mode when first imported, and set later it would merge files nobody writes."""
    path = os.environ.get(MULTIPROC_DIR)
    return path if path and values.ValueClass is not values.MutexValue else None


def forget_dead_workers(path: str) -> None:
    """Drop the live gauges (served models, snapshot rows) of workers that are gone: uvicorn replaces a worker
    that died without a word, and its last models would be listed as served for ever. Counts stay."""
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = int(file.rsplit("_", 1)[1].removesuffix(".db"))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, path)
        except PermissionError:
            pass  # alive, another user's


class _WithoutGone:
    """The merged metrics without the series a worker marked GONE."""

    def __init__(self, collector: MultiProcessCollector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        for metric in self.collector.collect():
            if metric.type == "gauge":
                metric.samples = [s for s in metric.samples if s.value != GONE]
            yield metric


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
        client = scope.get("client")
        CLIENT.set(client[0] if client else None)  # for the request's audit line (serving/access.py)

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
