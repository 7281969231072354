"""The gateway's metrics: the shared HTTP metrics plus the memory budget, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily

from gateway.scheduler.budget import MemoryBudget
from shared.http.metrics import HttpMetrics


class BudgetCollector:
    """Budget gauges read at scrape time, so they are never stale."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget

    def collect(self) -> Iterator[GaugeMetricFamily]:
        budget = self.budget
        yield GaugeMetricFamily("mediamesh_budget_bytes", "Usable memory budget", value=budget.total_budget_bytes)
        yield GaugeMetricFamily("mediamesh_budget_reserved_bytes", "Bytes held by models", value=budget.reserved_bytes)
        loaded = GaugeMetricFamily("mediamesh_model_reserved_bytes", "Bytes held per model", labels=["model"])
        in_flight = GaugeMetricFamily("mediamesh_model_in_flight", "Requests holding each model", labels=["model"])
        for name, slot in budget.slots.items():
            loaded.add_metric([name], slot.reserved)
            in_flight.add_metric([name], slot.in_flight)
        yield loaded
        yield in_flight


def install_metrics(app: FastAPI, budget: MemoryBudget) -> HttpMetrics:
    """Request metrics, budget gauges and `GET /metrics` on a registry of this app's own."""
    metrics = HttpMetrics()
    metrics.registry.register(BudgetCollector(budget))
    metrics.install(app)
    return metrics
