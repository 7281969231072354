"""`install_storage(app)` adds the storage, ingest, search and clusters routes to the gateway app;
`storage_lifespan(app)`, entered by the app's lifespan, holds their Postgres + Redis connections."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from gateway.api import clusters, embedding_spaces, media, search
from gateway.api.url_guard import RejectNulInUrl
from gateway.settings import GatewaySettings
from shared.schemas.gateway import DependencyHealth
from storage.runtime import Storage, open_storage

log = logging.getLogger(__name__)


def install_storage(app: FastAPI, settings: GatewaySettings) -> None:
    """Include the routers and register the Postgres and Redis entries of `GET /v1/health`.

    The connections are opened by `storage_lifespan(app)`, which the app's lifespan enters."""
    app.state.storage = None  # until `storage_lifespan` opens it: the storage routes answer 503
    app.add_middleware(RejectNulInUrl)  # Postgres refuses NUL in text: ids, queries and labels never reach it
    for router in (media.router, search.router, clusters.router, embedding_spaces.router):
        app.include_router(router)
    if not settings.storage_enabled:
        log.info("GATEWAY_STORAGE_ENABLED=false: storage routes will answer 503")
        return
    app.add_exception_handler(OperationalError, _database_unreachable)
    if not hasattr(app.state, "dependency_checks"):
        app.state.dependency_checks = []
    app.state.dependency_checks += [_check(app, "postgres", Storage.ping_postgres),
                                    _check(app, "redis", Storage.ping_redis)]


@asynccontextmanager
async def storage_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The storage part of the app's lifespan: Postgres + Redis (embedded when unset), migrated, open
    while the app runs.

    A storage that does not start is logged and left closed: the models keep serving, the storage
    routes answer 503 and `/v1/health` says why. With storage turned off this does nothing."""
    settings: GatewaySettings = app.state.settings
    if not settings.storage_enabled:
        yield
        return
    try:
        # Blocking (may start embedded servers, runs `alembic upgrade head`): off the event loop.
        app.state.storage = await asyncio.to_thread(
            open_storage, settings.connections, migrate=settings.migrate_on_start
        )
    except Exception:
        log.exception("storage did not start (Postgres/Redis); media, search and clusters are unavailable")
    try:
        yield
    finally:
        storage, app.state.storage = app.state.storage, None
        if storage is not None:
            await asyncio.to_thread(storage.close)


async def _database_unreachable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database error on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the database (Postgres) is unreachable; nothing was changed, retry shortly"},
                        status_code=503, headers={"Retry-After": "5"})


def _check(app: FastAPI, name: str, ping: Callable[[Storage], None]) -> Callable[[], Awaitable[DependencyHealth]]:
    async def check() -> DependencyHealth:
        storage: Storage | None = getattr(app.state, "storage", None)
        started = time.perf_counter()
        if storage is None:
            return DependencyHealth(name=name, status="down", detail="storage not started")
        try:
            await asyncio.wait_for(asyncio.to_thread(ping, storage), timeout=3.0)
        except Exception as exc:  # any failure is the health answer, not an error of the health route
            return DependencyHealth(name=name, status="down", detail=f"{type(exc).__name__}: {exc}"[:300])
        return DependencyHealth(name=name, status="up", latency_ms=round((time.perf_counter() - started) * 1000, 2))

    check.__name__ = f"{name}_check"
    check.dependency_name = name  # type: ignore[attr-defined]
    return check
