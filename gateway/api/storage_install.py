"""`install_storage(app)`: the one call that adds storage, ingest, search and clusters to the gateway app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gateway.api import clusters, media, search
from storage.runtime import Storage, open_storage
from storage.settings import StorageSettings

log = logging.getLogger(__name__)


def install_storage(app: FastAPI, settings: StorageSettings | None = None) -> None:
    """Include the routers, open Postgres + Redis (embedded when unset) and migrate at start-up,
    close at shutdown, and register the Postgres and Redis entries of `GET /v1/health`."""
    settings = settings or StorageSettings()
    app.state.storage_settings = settings
    for router in (media.router, search.router, clusters.router):
        app.include_router(router)
    if not settings.storage_enabled:
        log.info("GATEWAY_STORAGE_ENABLED=false: storage routes will answer 503")
        return

    async def start(the_app: FastAPI) -> None:
        # Blocking (may start embedded servers, runs `alembic upgrade head`): off the event loop.
        try:
            the_app.state.storage = await asyncio.to_thread(open_storage, settings)
        except Exception:  # the models keep serving; storage routes answer 503 and /v1/health says why
            log.exception("storage did not start (Postgres/Redis); media, search and clusters are unavailable")
            the_app.state.storage = None
            the_app.state.storage_error = "storage did not start; see the gateway log"

    async def stop(the_app: FastAPI) -> None:
        storage, the_app.state.storage = getattr(the_app.state, "storage", None), None
        if storage is not None:
            await asyncio.to_thread(storage.close)

    if hasattr(app.state, "on_startup"):  # the gateway's own start-up/shut-down hooks (gateway/app.py)
        app.state.on_startup.append(start)
        app.state.on_shutdown.append(stop)
    else:
        _wrap_lifespan(app, start, stop)
    app.add_exception_handler(OperationalError, _database_unreachable)
    if not hasattr(app.state, "dependency_checks"):
        app.state.dependency_checks = []
    app.state.dependency_checks.extend([_check(app, "postgres", _ping_postgres), _check(app, "redis", _ping_redis)])


def _wrap_lifespan(app: FastAPI, start: Callable[[FastAPI], Any], stop: Callable[[FastAPI], Any]) -> None:
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(the_app: FastAPI) -> AsyncIterator[Any]:
        await start(the_app)
        try:
            async with inner(the_app) as state:
                yield state
        finally:
            await stop(the_app)

    app.router.lifespan_context = lifespan


async def _database_unreachable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database error on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the database (Postgres) is unreachable; nothing was changed, retry shortly"},
                        status_code=503, headers={"Retry-After": "5"})


def _ping_postgres(storage: Storage) -> None:
    with storage.db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _ping_redis(storage: Storage) -> None:
    storage.redis.ping()


def _check(app: FastAPI, name: str, ping: Callable[[Storage], None]) -> Callable[[], Any]:
    async def check() -> Any:
        from shared.schemas.gateway import DependencyHealth

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
