"""The service kit's app factory: the common contract around one ServedModel."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Request, Response

from shared.config import ServiceSettings
from shared.http.errors import declare_error_responses, install_error_handlers
from shared.http.metrics import ServiceMetrics
from shared.http.size_limit import RequestSizeLimit
from shared.kit.lifecycle import ModelLifecycle
from shared.kit.served_model import ServedModel
from shared.kit.tasks import TaskRouter
from shared.schemas.model import Health, LoadResult, ModelInfo, ModelState, UnloadResult

log = logging.getLogger("mediamesh.service")


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request
async def get_lifecycle(request: Request) -> ModelLifecycle[Any]:
    return request.app.state.lifecycle


S = TypeVar("S", bound=ServiceSettings)

LifecycleDep = Annotated[ModelLifecycle[Any], Depends(get_lifecycle)]


def contract_router() -> APIRouter:
    router = APIRouter(tags=["lifecycle"])

    @router.get("/health")
    async def health(lifecycle: LifecycleDep) -> Health:
        overdue = lifecycle.overdue
        return Health(status="degraded" if overdue else "ok", service=lifecycle.name, state=lifecycle.state,
                      overdue=overdue)

    @router.get("/ready", responses={503: {"model": Health, "description": "The model is not loaded."}})
    async def ready(lifecycle: LifecycleDep, response: Response) -> Health:
        if lifecycle.state is not ModelState.loaded:
            response.status_code = 503
        return Health(status="ready" if response.status_code != 503 else "not ready",
                      service=lifecycle.name, state=lifecycle.state)

    @router.get("/v1/model")
    async def model_info(lifecycle: LifecycleDep) -> ModelInfo:
        return lifecycle.info()

    @router.post("/v1/model/load")
    async def load(lifecycle: LifecycleDep) -> LoadResult:
        return await lifecycle.load()

    @router.post("/v1/model/unload")
    async def unload(lifecycle: LifecycleDep, background: BackgroundTasks) -> UnloadResult:
        """Drains, then frees the model; unload mode restart then ends the process (after this answer)."""
        result = await lifecycle.unload()
        if result.restarting:
            background.add_task(lifecycle.exit_for_restart)
        return result

    return router


def create_service_app(
    settings: S,
    make_model: Callable[[S], ServedModel],
    routers: Sequence[APIRouter],
    *,
    title: str,
) -> FastAPI:
    """Build a model service: lifecycle endpoints, /metrics, size cap, error policy, task routers.

    The batchers of every `TaskRouter`'s tasks are made here, so a service whose settings lack
    batch settings fails at start-up, not on its first request."""
    metrics = ServiceMetrics()
    lifecycle: ModelLifecycle[Any] = ModelLifecycle(
        make_model(settings), metrics, autoload=settings.autoload, threads=settings.inference_threads
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.cuda_memory_fraction is not None:
            _cap_cuda_memory(settings.cuda_memory_fraction)
        if settings.torch_threads is not None:
            import torch

            torch.set_num_threads(settings.torch_threads)
        if settings.autoload:
            try:
                await lifecycle.load()
            except Exception:  # the error state and reason are visible in /health and /v1/model
                log.exception("autoload of %s failed", settings.name)
        yield
        lifecycle.shutdown()

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.settings = settings
    app.state.lifecycle = lifecycle
    app.state.metrics = metrics
    install_error_handlers(app)
    declare_error_responses(app)
    metrics.install(app)
    app.include_router(contract_router())
    for router in routers:
        app.include_router(router)
        for batch in router.batches if isinstance(router, TaskRouter) else []:
            lifecycle.batcher(batch)
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    return app


def _cap_cuda_memory(fraction: float) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(fraction)
