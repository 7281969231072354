"""`GET /v1/models` (OpenAI's model list, with what is loaded as `ollama ps` shows it) and manual
`POST /v1/models/{name}/load|unload`."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request

from gateway.api.model_names import aliases_of
from gateway.scheduler.budget import MemoryBudget
from gateway.scheduler.directory import ServiceRegistry
from gateway.scheduler.ledger import LedgerUnavailable
from gateway.scheduler.slots import ModelSlot
from shared.schemas.gateway import DeviceBudget, ModelsReport, ModelStatus

router = APIRouter(tags=["models"])


def get_registry(request: Request) -> ServiceRegistry:
    return request.app.state.registry


def model_status(registry: ServiceRegistry, slot: ModelSlot) -> ModelStatus:
    record = registry.record(slot.name)
    budget = registry.budget
    now, expires = datetime.now(UTC), budget.expires_in(slot)
    last_used = record.info.last_used if record.info is not None else None
    loaded_at = record.info.loaded_at if record.info is not None else None
    return ModelStatus(
        id=slot.name, created=int(loaded_at.timestamp()) if loaded_at else 0, aliases=aliases_of(registry, slot.name),
        kind=record.endpoint.kind, url=record.endpoint.url, state=slot.state,
        reserved_bytes=slot.reserved if slot.state.value in ("loading", "loaded", "unloading") else 0,
        footprint_bytes=slot.footprint_bytes, estimated_bytes=slot.estimated_bytes, pinned=slot.pinned,
        priority=slot.priority, in_flight=slot.in_flight, waiting=slot.waiting,
        keep_alive=slot.keep_alive_s, last_used=last_used,
        # a keep_alive of 1e300 s must not overflow the datetime: ~100 years is "not soon" enough
        expires_at=now + timedelta(seconds=min(expires, 3e9)) if expires is not None else None,
        error=slot.error if slot.state.value in ("error", "down") else None,
        resident_bytes=slot.resident_bytes, unload_mode="restart" if slot.restarts_on_unload else "release",
        overdue=slot.overdue, device=slot.device, freed_bytes=record.freed_bytes,
    )


def models_report(registry: ServiceRegistry) -> ModelsReport:
    budget = registry.budget
    return ModelsReport(
        data=[model_status(registry, slot) for slot in budget.slots.values()],
        budget_bytes=budget.total_budget_bytes, reserved_bytes=budget.reserved_bytes, free_bytes=budget.free_bytes,
        budgets=[device_budget(budget, device) for device in budget.devices()],
        devices=registry.devices(),
    )


def device_budget(budget: MemoryBudget, device: str) -> DeviceBudget:
    view = budget.last_view(device)
    limit, reserved = budget.budget_of(device), budget.device_reserved.get(device, 0)
    holders = {holder for holding in view.holdings.values() for holder in holding.holders} if view else set()
    return DeviceBudget(device=device, budget_bytes=limit, reserved_bytes=reserved, free_bytes=limit - reserved,
                        gateways=len(holders))


@router.get("/v1/models", response_model=ModelsReport)
async def list_models(request: Request) -> ModelsReport:
    registry = get_registry(request)
    with contextlib.suppress(LedgerUnavailable):  # else the last figures the ledger gave
        await registry.budget.refresh_views()
    return models_report(registry)


@router.post("/v1/models/{name}/load", response_model=ModelStatus)
async def load_model(name: str, request: Request) -> ModelStatus:
    registry = get_registry(request)
    registry.record(name)
    if not registry.records[name].up:
        await registry.refresh(name)
    slot = await registry.budget.load(name)
    return model_status(registry, slot)


@router.post("/v1/models/{name}/unload", response_model=ModelStatus)
async def unload_model(name: str, request: Request) -> ModelStatus:
    registry = get_registry(request)
    registry.record(name)
    slot = await registry.budget.unload(name)
    return model_status(registry, slot)
