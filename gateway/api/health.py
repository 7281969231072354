"""`GET /v1/health`: every service, plus pluggable dependency checks (Postgres, Redis, ...).

Other parts of the gateway register a check with `add_dependency_check(app, check)`: an async
callable returning a `DependencyHealth`. A check that raises or hangs counts as down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, FastAPI, Request, Response

from gateway.scheduler.directory import ServiceRegistry
from shared.schemas.gateway import DependencyHealth, HealthReport, ServiceHealth

DependencyCheck = Callable[[], Awaitable[DependencyHealth]]
CHECK_TIMEOUT_S = 3.0

router = APIRouter(tags=["health"])


def add_dependency_check(app: FastAPI, check: DependencyCheck) -> None:
    app.state.dependency_checks.append(check)


async def run_check(check: DependencyCheck) -> DependencyHealth:
    name = getattr(check, "dependency_name", getattr(check, "__name__", "dependency"))
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception as exc:  # a failing check is a finding, not an error of the health route
        return DependencyHealth(name=name, status="down", detail=f"{type(exc).__name__}: {exc}", critical=True,
                                latency_ms=(time.perf_counter() - started) * 1000)
    if result.latency_ms is None:
        result.latency_ms = (time.perf_counter() - started) * 1000
    return result


def overall(services: list[ServiceHealth], dependencies: list[DependencyHealth],
            warnings: list[str] | None = None) -> Literal["ok", "degraded", "down"]:
    if any(d.status == "down" and d.critical for d in dependencies):
        return "down"
    if services and all(s.status == "down" for s in services):
        return "down"
    if any(s.status == "down" for s in services) or any(d.status == "down" for d in dependencies) or warnings:
        return "degraded"
    return "ok"


@router.get("/v1/health", response_model=HealthReport,
            responses={503: {"model": HealthReport, "description": "Down: the report says what is."}})
async def health(request: Request, response: Response, fresh: bool = False) -> HealthReport:
    """Overall ok / degraded / down; `?fresh=true` polls the services now instead of the last poll."""
    registry: ServiceRegistry = request.app.state.registry
    if fresh:
        await registry.refresh_all()
    services = [record.health() for record in registry.records.values()]
    dependencies = list(await asyncio.gather(*(run_check(c) for c in request.app.state.dependency_checks)))
    warnings = registry.warnings()
    report = HealthReport(status=overall(services, dependencies, warnings), services=services,
                          dependencies=dependencies, warnings=warnings)
    if report.status == "down":
        response.status_code = 503
    return report


@router.get("/health", include_in_schema=False)
async def liveness() -> dict[str, str]:
    return {"status": "ok", "service": "gateway"}
