"""The worker's Prometheus metrics, served on their own small HTTP port (the worker has no API)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("mediamesh.worker")

JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800)


class WorkerMetrics:
    def __init__(self, waiting: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "mediamesh_worker_jobs_total", "Job attempts by outcome (done, retried, failed)", ["kind", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "mediamesh_worker_job_seconds", "Seconds per job attempt", ["kind"], buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.running = Gauge("mediamesh_worker_jobs_running", "Jobs running now", registry=self.registry)
        queued = Gauge("mediamesh_worker_queue_waiting", "Jobs waiting in the queue", registry=self.registry)
        queued.set_function(lambda: _count_or_nan(waiting))

    def observe(self, kind: str, outcome: str, seconds: float) -> None:
        self.jobs.labels(kind, outcome).inc()
        self.seconds.labels(kind).observe(seconds)

    def serve(self, host: str, port: int) -> None:
        """Start `/metrics` on host:port; a port already taken (a second worker) only costs the metrics."""
        if port == 0:
            return
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            log.warning("worker metrics not served: cannot listen on %s:%d (%s); set WORKER_METRICS_PORT", host,
                        port, exc)
            return
        log.info("worker metrics on http://%s:%d/metrics", host, port)


def _count_or_nan(count: Callable[[], int]) -> float:
    try:
        return float(count())
    except Exception:  # Redis away: the scrape still answers, this one value is unknown
        return float("nan")
