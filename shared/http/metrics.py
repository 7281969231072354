"""Prometheus metrics of one process, on its own registry so tests can run many apps.

Every process counts its HTTP requests with the same pure ASGI middleware. Not
`BaseHTTPMiddleware`: that costs a task and a stream per request (about 0.3 ms of CPU here),
and the gateway sits in front of every model call, so its overhead counts twice. The route
label is the template FastAPI puts into the scope while routing (`scope["route"]`), instead
of matching every route a second time.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class HttpMetrics:
    """Request counts and latency by route template; every process has these."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "mediamesh_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mediamesh_request_seconds", "HTTP request latency", ["route", "method"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )

    def install(self, app: FastAPI) -> None:
        """Count every request of `app` and serve `GET /metrics`."""
        app.add_middleware(HttpMetricsMiddleware, metrics=self)

        @app.get("/metrics", include_in_schema=False)
        async def _metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """Pure ASGI: one count and one latency observation per HTTP request, labelled by route template."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the caller gets when the app raises before it answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route, scope["method"]).observe(time.perf_counter() - started)


class ServiceMetrics(HttpMetrics):
    """A model service's metrics: HTTP plus batches, loads, unloads and memory."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.batch_size = Histogram("mediamesh_batch_size", "Items per batch run", buckets=BATCH_BUCKETS, registry=r)
        self.loads = Counter("mediamesh_model_loads_total", "Model loads", registry=r)
        self.unloads = Counter("mediamesh_model_unloads_total", "Model unloads", registry=r)
        self.load_seconds = Histogram(
            "mediamesh_model_load_seconds", "Seconds per model load", buckets=LATENCY_BUCKETS, registry=r
        )
        self.memory_bytes = Gauge("mediamesh_model_memory_bytes", "Measured model memory", registry=r)
        self.in_flight = Gauge("mediamesh_model_in_flight", "Requests holding the model", registry=r)
        self.overdue = Counter("mediamesh_inference_overdue_total",
                               "Inferences that ran past the service's INFERENCE_LIMIT_S", registry=r)
        self.overdue_now = Gauge("mediamesh_inference_overdue_running", "Inferences past the limit still running",
                                 registry=r)
        self.device_bytes = Gauge("mediamesh_device_process_bytes",
                                  "This process's GPU use as NVML counts it (context included)", registry=r)

    def observe_load(self, seconds: float, memory_bytes: int) -> None:
        self.loads.inc()
        self.load_seconds.observe(seconds)
        self.memory_bytes.set(memory_bytes)

    def observe_unload(self, memory_bytes: int) -> None:
        self.unloads.inc()
        self.memory_bytes.set(memory_bytes)
