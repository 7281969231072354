"""The gateway (port 8000): `uvicorn --factory gateway.app:create_app`.

One process in front of the model services: the memory-budget scheduler, the proxy and the
cascade, and (unless `GATEWAY_STORAGE_ENABLED=false`) the media, jobs, search and clusters
routes over Postgres + Redis. Health checks of other parts go through
`gateway.api.health.add_dependency_check`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.api import cascade_report, heads, health
from gateway.api import models as model_routes
from gateway.api import openai as openai_routes
from gateway.api.classify import router as cascade_router
from gateway.api.storage_install import install_storage, storage_lifespan
from gateway.cascade.metrics import CascadeMetrics
from gateway.cascade.store import CascadeStore
from gateway.dispatch import proxy
from gateway.dispatch.dispatcher import ServiceDispatcher
from gateway.metrics import install_metrics
from gateway.scheduler.directory import ServiceRegistry
from gateway.settings import GatewaySettings
from gateway.web import install_web
from shared.http.auth import OPEN_PATHS, ApiKeyGuard
from shared.http.errors import declare_error_responses, install_error_handlers
from shared.http.size_limit import RequestSizeLimit


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Services first (the poller's first round), then storage; stopped in the reverse order."""
    registry: ServiceRegistry = app.state.registry
    dispatcher: ServiceDispatcher = app.state.dispatcher
    await registry.start()
    try:
        async with storage_lifespan(app):
            yield
    finally:
        await dispatcher.close()
        await registry.stop()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    registry = ServiceRegistry(settings)
    app = FastAPI(title="mediamesh gateway", lifespan=lifespan)
    app.state.settings = settings
    app.state.registry = registry
    app.state.dispatcher = ServiceDispatcher(registry)
    app.state.cascade = CascadeStore.from_settings(settings)
    app.state.dependency_checks = []
    install_error_handlers(app)
    declare_error_responses(app)
    app.state.cascade_metrics = CascadeMetrics(install_metrics(app, registry.budget).registry)
    # the OpenAI-compatible API (chat, completions, audio, embeddings) sits beside the gateway's own;
    # the model calls first: routes are matched in order, and these carry most requests
    for router in (proxy.router, cascade_router, health.router, model_routes.router, openai_routes.router,
                   cascade_report.router, heads.router):
        app.include_router(router)
    if settings.storage_enabled:
        install_storage(app, settings)  # media / jobs / search / clusters routers and their health checks
    web_paths = install_web(app)  # the web app at `/`: its page and assets open, its API calls keyed
    # added last, so outermost: oversized or unauthenticated requests are refused before anything else runs
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_in_memory_bytes,
                       path_limits={"/v1/media": settings.max_upload_bytes})
    if settings.api_key is not None:
        app.add_middleware(ApiKeyGuard, api_key=settings.api_key.get_secret_value(),
                           open_paths=OPEN_PATHS | web_paths)
    return app
