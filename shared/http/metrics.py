"""Prometheus metrics of one process, on its own registry so tests can run many apps."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class HttpMetrics:
    """Request counts and latency by route template; every process has these."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "mediamesh_requests_total", "HTTP requests", ["route", "method", "status"], registry=registry
        )
        self.latency = Histogram(
            "mediamesh_request_seconds", "HTTP request latency", ["route", "method"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            started = time.perf_counter()
            status = 500
            try:
                response = await call_next(request)
                status = response.status_code
                return response
            finally:
                route = _route_template(app, request)
                self.requests.labels(route, request.method, str(status)).inc()
                self.latency.labels(route, request.method).observe(time.perf_counter() - started)

        @app.get("/metrics", include_in_schema=False)
        async def _metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class ServiceMetrics(HttpMetrics):
    """A model service's metrics: HTTP plus batches, loads, unloads and memory."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry or CollectorRegistry())
        r = self.registry
        self.batch_size = Histogram("mediamesh_batch_size", "Items per batch run", buckets=BATCH_BUCKETS, registry=r)
        self.loads = Counter("mediamesh_model_loads_total", "Model loads", registry=r)
        self.unloads = Counter("mediamesh_model_unloads_total", "Model unloads", registry=r)
        self.load_seconds = Histogram(
            "mediamesh_model_load_seconds", "Seconds per model load", buckets=LATENCY_BUCKETS, registry=r
        )
        self.memory_bytes = Gauge("mediamesh_model_memory_bytes", "Measured model memory", registry=r)
        self.in_flight = Gauge("mediamesh_model_in_flight", "Requests holding the model", registry=r)

    def observe_load(self, seconds: float, memory_bytes: int) -> None:
        self.loads.inc()
        self.load_seconds.observe(seconds)
        self.memory_bytes.set(memory_bytes)

    def observe_unload(self, memory_bytes: int) -> None:
        self.unloads.inc()
        self.memory_bytes.set(memory_bytes)


def _route_template(app: FastAPI, request: Request) -> str:
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return getattr(route, "path", request.url.path)
    return "unmatched"
