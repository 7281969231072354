"""The services the gateway knows and what it last read from each.

The registry keeps the state: one record per service, fed by the health poller (`poller.py`)
and handed to the budget, so a restarted service (which comes back unloaded) is never mistaken
for a loaded one. It is also the budget's backend: load and unload are the services' own
lifecycle calls (`lifecycle_client.py`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from gateway.scheduler.budget import MemoryBudget
from gateway.scheduler.idle import IdlePolicy
from gateway.scheduler.lifecycle_client import LifecycleClient
from gateway.scheduler.poller import HealthPoller
from gateway.settings import GatewaySettings, ServiceEndpoint
from shared.http.errors import NotFound
from shared.schemas.gateway import ServiceHealth
from shared.schemas.model import ModelInfo


@dataclass
class ServiceRecord:
    name: str
    endpoint: ServiceEndpoint
    info: ModelInfo | None = None
    up: bool = False
    error: str | None = "not checked yet"
    checked_at: datetime | None = None

    def health(self) -> ServiceHealth:
        return ServiceHealth(
            name=self.name, kind=self.endpoint.kind, url=self.endpoint.url, status="up" if self.up else "down",
            model_state=self.info.state.value if self.info and self.up else None, error=self.error,
            checked_at=self.checked_at,
        )


class ServiceRegistry:
    def __init__(self, settings: GatewaySettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.lifecycle = LifecycleClient(settings.request_timeout_s, settings.load_timeout_s, client)
        self.records = {name: ServiceRecord(name, ep) for name, ep in settings.services.items()}
        self.budget = MemoryBudget(
            self, settings.usable_budget_bytes, room_timeout_s=settings.room_timeout_s,
            retry_after_s=settings.retry_after_s,
            idle=IdlePolicy(settings.idle_ttl_s, dict(settings.idle_ttl_by_model), settings.max_keep_alive_s),
        )
        for name in self.records:
            self.budget.add(name, pinned=name in settings.pinned, priority=settings.priorities.get(name, 0))
        self.poller = HealthPoller(self, settings.poll_interval_s, settings.pinned)

    def record(self, name: str) -> ServiceRecord:
        if name not in self.records:
            raise NotFound(f"unknown service '{name}'; known services: {', '.join(sorted(self.records))}")
        return self.records[name]

    def url(self, name: str, path: str) -> str:
        return f"{self.record(name).endpoint.url}/{path.lstrip('/')}"

    def of_kind(self, kind: str) -> list[str]:
        return [name for name, rec in self.records.items() if rec.endpoint.kind == kind]

    async def start(self) -> None:
        await self.poller.start()

    async def stop(self) -> None:
        await self.poller.stop()
        await self.lifecycle.close()

    async def refresh(self, name: str) -> ServiceRecord:
        """Read the service's `/v1/model` now and tell the budget what it says."""
        record = self.record(name)
        try:
            record.info, record.up, record.error = await self.lifecycle.model_info(record.endpoint.url), True, None
        except (httpx.HTTPError, ValueError) as exc:
            record.up, record.error = False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if isinstance(exc, httpx.TimeoutException):
                # busy, not gone: its memory may still be held, so the budget keeps counting it
                record.checked_at = datetime.now(UTC)
                return record
        record.checked_at = datetime.now(UTC)
        info = record.info if record.up else None
        await self.budget.observe(
            name, info.state.value if info else None,
            estimated_bytes=info.estimated_bytes if info else None,
            footprint_bytes=info.footprint_bytes if info else None,
        )
        return record

    async def refresh_all(self) -> None:
        await asyncio.gather(*(self.refresh(name) for name in self.records))

    # -- the budget's backend (`ModelBackend`) ----------------------------------------------

    async def load(self, name: str) -> int:
        return await self.lifecycle.load(name, self.record(name).endpoint.url)

    async def unload(self, name: str) -> None:
        await self.lifecycle.unload(name, self.record(name).endpoint.url)
