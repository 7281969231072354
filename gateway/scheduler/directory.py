"""The services the gateway knows, reached over HTTP with one keep-alive client.

It polls each service's `/v1/model` and hands what it reads to the budget, so a restarted
service (which comes back unloaded) is never mistaken for a loaded one. It is also the
budget's backend: load and unload are the services' own lifecycle calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from gateway.scheduler.budget import MemoryBudget
from gateway.settings import GatewaySettings, ServiceEndpoint
from shared.http.errors import NotFound, ServiceError, error_detail
from shared.schemas.gateway import ServiceHealth, SlotState
from shared.schemas.model import ModelInfo

log = logging.getLogger("mediamesh.registry")


class ServiceDown(ServiceError):
    """The service could not be reached at all (502: the gateway is fine, its upstream is not)."""

    status_code = 502

    def __init__(self, name: str, url: str, exc: Exception) -> None:
        super().__init__(
            f"service '{name}' at {url} is not reachable ({type(exc).__name__}); "
            "check that it runs (GET /v1/health shows every service)",
            headers={"Retry-After": "5"},
        )


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
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.request_timeout_s, connect=5.0),
            # idle connections are dropped before uvicorn's own 5 s keep-alive closes them under us
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0),
        )
        self.records = {name: ServiceRecord(name, ep) for name, ep in settings.services.items()}
        self.budget = MemoryBudget(
            self, settings.usable_budget_bytes, room_timeout_s=settings.room_timeout_s,
            idle_ttl_s=settings.idle_ttl_s, retry_after_s=settings.retry_after_s,
        )
        for name in self.records:
            self.budget.add(name, pinned=name in settings.pinned, priority=settings.priorities.get(name, 0))
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, name: str) -> ServiceRecord:
        if name not in self.records:
            raise NotFound(f"unknown service '{name}'; known services: {', '.join(sorted(self.records))}")
        return self.records[name]

    def url(self, name: str, path: str) -> str:
        return f"{self.record(name).endpoint.url}/{path.lstrip('/')}"

    def of_kind(self, kind: str) -> list[str]:
        return [name for name, rec in self.records.items() if rec.endpoint.kind == kind]

    # -- polling ----------------------------------------------------------------------------

    async def refresh(self, name: str) -> ServiceRecord:
        """Read the service's `/v1/model` now and tell the budget what it says."""
        record = self.record(name)
        try:
            answer = await self.client.get(self.url(name, "/v1/model"), timeout=5.0)
            answer.raise_for_status()
            record.info, record.up, record.error = ModelInfo.model_validate(answer.json()), True, None
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

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.refresh_all()
                self._reload_pinned()
                unloaded = await self.budget.unload_idle()
                if unloaded:
                    log.info("idle time-to-live unloaded %s", ", ".join(unloaded))
            except Exception:  # keep polling; one bad round must not stop health checks
                log.exception("health polling round failed")

    async def start(self) -> None:
        await self.refresh_all()
        self._poller = asyncio.create_task(self._poll_forever())
        for name in self.settings.pinned:
            self._spawn(self._load_pinned(name))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # keep a reference until it is done (asyncio holds only weak ones)
        task.add_done_callback(self._tasks.discard)

    def _reload_pinned(self) -> None:
        """A pinned model whose service restarted (or came up late) is loaded again."""
        for name in self.settings.pinned:
            if self.records[name].up and self.budget.slots[name].state in (SlotState.unloaded, SlotState.down):
                self._spawn(self._load_pinned(name))

    async def _load_pinned(self, name: str) -> None:
        try:
            await self.budget.load(name)
        except ServiceError as exc:
            log.warning("pinned model %s could not be loaded at start: %s", name, exc.detail)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.client.aclose()

    # -- the budget's backend ---------------------------------------------------------------

    async def load(self, name: str) -> int:
        answer = await self._lifecycle_call(name, "/v1/model/load")
        return int(str(answer.get("memory_bytes", 0)))

    async def unload(self, name: str) -> None:
        await self._lifecycle_call(name, "/v1/model/unload")

    async def _lifecycle_call(self, name: str, path: str) -> dict[str, object]:
        url = self.url(name, path)
        for attempt in range(2):  # load and unload are idempotent: a dropped connection is retried once
            try:
                answer = await self.client.post(url, timeout=self.settings.load_timeout_s)
                break
            except (httpx.RemoteProtocolError, httpx.ConnectError) as exc:
                if attempt == 1:
                    raise ServiceDown(name, self.record(name).endpoint.url, exc) from exc
            except httpx.HTTPError as exc:
                raise ServiceDown(name, self.record(name).endpoint.url, exc) from exc
        if answer.status_code >= 400:
            raise ServiceError(
                f"service '{name}' answered {answer.status_code} to {path}: {error_detail(answer.content)}"
            )
        return answer.json()

