"""The gateway (port 8000): `uvicorn --factory gateway.app:create_app`.

Routers of other parts (media, jobs, search, clusters) are included in `create_app`, and their
start-up/shut-down work goes into `app.state.on_startup` / `app.state.on_shutdown` (async
callables taking the app); their health checks go through `gateway.api.health.add_dependency_check`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import health
from gateway.api import models as model_routes
from gateway.api.classify import router as cascade_router
from gateway.api.storage_install import install_storage
from gateway.cascade.store import CascadeStore
from gateway.dispatch import proxy
from gateway.dispatch.dispatcher import ServiceDispatcher
from gateway.metrics import GatewayMetrics
from gateway.scheduler.directory import ServiceRegistry
from gateway.settings import GatewaySettings
from shared.http.errors import install_error_handlers
from shared.http.size_limit import RequestSizeLimit

log = logging.getLogger("mediamesh.gateway")

Hook = Callable[[FastAPI], Awaitable[None]]
OPEN_PATHS = frozenset({"/health", "/v1/health", "/metrics"})


class ApiKeyGuard:
    """Pure ASGI (no per-request task overhead): `Authorization: Bearer KEY` or `X-API-Key: KEY`."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app, self.key = app, api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allowed(dict(scope["headers"])):
            await self.app(scope, receive, send)
            return
        body = b'{"detail":"missing or wrong API key; send Authorization: Bearer <key> or X-API-Key: <key>"}'
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key") or headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
        return bool(given) and secrets.compare_digest(given, self.key)


class BudgetCollector:
    """Budget gauges read at scrape time, so they are never stale."""

    def __init__(self, registry: ServiceRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        budget = self.registry.budget
        yield GaugeMetricFamily("mediamesh_budget_bytes", "Usable memory budget", value=budget.budget_bytes)
        yield GaugeMetricFamily("mediamesh_budget_reserved_bytes", "Bytes held by models", value=budget.reserved_bytes)
        loaded = GaugeMetricFamily("mediamesh_model_reserved_bytes", "Bytes held per model", labels=["model"])
        in_flight = GaugeMetricFamily("mediamesh_model_in_flight", "Requests holding each model", labels=["model"])
        for name, slot in budget.slots.items():
            loaded.add_metric([name], slot.reserved)
            in_flight.add_metric([name], slot.in_flight)
        yield loaded
        yield in_flight


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    registry = ServiceRegistry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await registry.start()
        for hook in app.state.on_startup:
            await hook(app)
        try:
            yield
        finally:
            for hook in reversed(app.state.on_shutdown):
                await hook(app)
            await app.state.dispatcher.close()
            await registry.stop()

    app = FastAPI(title="mediamesh gateway", lifespan=lifespan)
    app.state.settings = settings
    app.state.registry = registry
    app.state.dispatcher = ServiceDispatcher(registry)
    app.state.cascade = CascadeStore.from_settings(settings)
    app.state.dependency_checks = []
    app.state.on_startup = []  # list[Hook]
    app.state.on_shutdown = []  # list[Hook]
    install_error_handlers(app)
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.registry.register(BudgetCollector(registry))
    metrics.install(app)
    for router in (health.router, model_routes.router, proxy.router, cascade_router):
        app.include_router(router)
    if settings.storage_enabled:
        install_storage(app)  # media / jobs / search / clusters routers, Postgres + Redis, their health checks
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_upload_bytes)
    if settings.api_key is not None:
        app.add_middleware(ApiKeyGuard, api_key=settings.api_key.get_secret_value())
    return app
