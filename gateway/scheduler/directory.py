"""The services the gateway knows and what it last read from each.

The registry keeps the state: one record per service, fed by the health poller (`poller.py`)
and handed to the budget, so a restarted service (which comes back unloaded) is never mistaken
for a loaded one. It is also the budget's backend: load and unload are the services' own
lifecycle calls (`lifecycle_client.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from gateway.scheduler.budget import MemoryBudget
from gateway.scheduler.idle import IdlePolicy
from gateway.scheduler.ledger import LedgerUnavailable, RedisLedger
from gateway.scheduler.lifecycle_client import LifecycleClient
from gateway.scheduler.poller import HealthPoller
from gateway.scheduler.reconcile import Reading, reconcile
from gateway.scheduler.slots import mb
from gateway.settings import GatewaySettings, ServiceEndpoint
from shared.embedded import EmbeddedRedis
from shared.http.errors import NotFound, ServiceError
from shared.schemas.gateway import DeviceCheck, ServiceHealth
from shared.schemas.model import ModelInfo, ModelState

log = logging.getLogger("mediamesh.registry")
RESTART_POLL_S = 0.2


class NotBack(ServiceError):
    status_code = 502


@dataclass
class ServiceRecord:
    name: str
    endpoint: ServiceEndpoint
    info: ModelInfo | None = None
    up: bool = False
    error: str | None = "not checked yet"
    checked_at: datetime | None = None
    freed_bytes: int | None = None  # the GPU memory the last unload gave back (NVML), where measured

    def health(self) -> ServiceHealth:
        return ServiceHealth(
            name=self.name, kind=self.endpoint.kind, url=self.endpoint.url, status="up" if self.up else "down",
            model_state=self.info.state.value if self.info and self.up else None, error=self.error,
            checked_at=self.checked_at, overdue=self.info.overdue if self.info and self.up else 0,
        )


class ServiceRegistry:
    def __init__(self, settings: GatewaySettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.lifecycle = LifecycleClient(settings.request_timeout_s, settings.load_timeout_s, client)
        self.records = {name: ServiceRecord(name, ep) for name, ep in settings.services.items()}
        self.ledger = RedisLedger(settings.ledger_namespace, lease_ttl_s=settings.lease_ttl_s)
        self.budget = MemoryBudget(
            self, settings.usable_budget_bytes, ledger=self.ledger, room_timeout_s=settings.room_timeout_s,
            retry_after_s=settings.retry_after_s,
            idle=IdlePolicy(settings.idle_ttl_s, dict(settings.idle_ttl_by_model), settings.max_keep_alive_s),
            device_budgets=settings.usable_device_budgets, locate=self.refresh, use_linger_s=settings.use_linger_s,
        )
        self._embedded_redis: EmbeddedRedis | None = None
        self._renewer: asyncio.Task[None] | None = None
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
        """The ledger first (REDIS_URL, else the embedded Redis under MEDIAMESH_HOME), then the first poll."""
        url = self.settings.connections.redis_url
        if url is None:
            self._embedded_redis = EmbeddedRedis()
            url = await asyncio.to_thread(self._embedded_redis.start)
            log.info("REDIS_URL unset: the budget ledger is in the embedded Redis")
        self.ledger.connect(url)
        self._renewer = asyncio.create_task(self._renew_forever())
        await self.poller.start()

    async def stop(self) -> None:
        """A clean stop gives up this gateway's leases at once (a killed one's lapse after GATEWAY_LEASE_TTL_S)."""
        await self.poller.stop()
        await self.budget.close()
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self.ledger.connected:
            try:
                await self.ledger.leave_all(self.budget.held())
            except LedgerUnavailable as exc:
                log.warning("leases not given up (they lapse on their own): %s", exc.detail)
            await self.ledger.close()
        if self._embedded_redis is not None:
            await asyncio.to_thread(self._embedded_redis.stop)
        await self.lifecycle.close()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_ttl_s / 3)
            try:
                await self.budget.renew_leases()
            except Exception:  # keep renewing: one failed round (Redis restarting) must not end the leases
                log.exception("renewing the budget ledger's leases failed")

    async def refresh(self, name: str) -> ServiceRecord:
        """Read the service's `/v1/model` now and tell the budget what it says."""
        record, asked_at = self.record(name), time.monotonic()
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
        if info is not None:
            self.budget.slot(name).restarts_on_unload = info.unload_mode == "restart"
        await self.budget.observe(
            name, info.state.value if info else None,
            estimated_bytes=self._estimate(info) if info else None,
            footprint_bytes=info.footprint_bytes if info else None,
            device_bytes=info.device_use.process_bytes if info and info.device_use else None,
            overdue=info.overdue if info else 0,
            device=info.placement.key if info and info.placement else None, asked_at=asked_at,
        )
        return record

    def _estimate(self, info: ModelInfo) -> int:
        """The weight files, plus the CUDA context its first load will create (a GPU service that has not touched
        the card yet): the context another service measured, since a context's size depends on the card."""
        if not info.device.startswith("cuda") or info.device_use is not None:
            return info.estimated_bytes
        contexts = [r.info.device_use.context_bytes for r in self.records.values()
                    if r.info is not None and r.info.device_use is not None and r.info.device_use.context_bytes]
        return info.estimated_bytes + max((c for c in contexts if c is not None), default=0)

    def devices(self) -> list[DeviceCheck]:
        """Each GPU the services report, its NVML use reconciled with the budget (see `reconcile.py`)."""
        readings = [Reading(r.info, self.budget.slots[r.name], r.checked_at.timestamp())
                    for r in self.records.values() if r.up and r.info is not None and r.checked_at is not None]
        return reconcile(readings, self.settings.reconcile_margin_bytes)

    def warnings(self) -> list[str]:
        """What makes the mesh degraded though every service is up: the watchdog and the reconciliation."""
        found = [f"service '{r.name}' has {r.info.overdue} inference(s) running past its limit "
                 f"(the longest for {r.info.longest_inference_s or 0:.0f}s); its memory stays counted"
                 for r in self.records.values() if r.up and r.info is not None and r.info.overdue]
        return found + [d.message for d in self.devices() if d.message]

    async def refresh_all(self) -> None:
        await asyncio.gather(*(self.refresh(name) for name in self.records))

    # -- the budget's backend (`ModelBackend`) ----------------------------------------------

    async def load(self, name: str) -> int:
        return await self.lifecycle.load(name, self.record(name).endpoint.url)

    async def unload(self, name: str) -> int | None:
        """Unload; a restart-mode service's process then exits, and its unload ends when it is back, empty.
        Returns what the process holds on the GPU afterwards (NVML), None where not measured."""
        record = self.record(name)
        before = record.info.pid if record.info is not None else None
        result = await self.lifecycle.unload(name, record.endpoint.url)
        if not result.restarting:
            record.freed_bytes = result.device_freed_bytes
            return result.device_bytes
        info = await self._wait_for_restart(record, before)
        held = result.device_freed_bytes  # the old process's whole use, given back by its exit
        # a new process that has not touched the GPU holds nothing on it
        left = (info.device_use.process_bytes if info.device_use else 0) if held is not None else None
        record.freed_bytes = None if left is None or held is None else max(held - left, 0)
        log.info("%s unloaded by restart (pid %s → %s); freed %s on the GPU", name, before, info.pid,
                 mb(record.freed_bytes) if record.freed_bytes is not None else "an unmeasured amount")
        return left

    async def _wait_for_restart(self, record: ServiceRecord, old_pid: int | None) -> ModelInfo:
        """Until the service answers from a new process (its supervisor restarted it), or the load timeout."""
        deadline = time.monotonic() + self.settings.load_timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(RESTART_POLL_S)
            try:
                info = await self.lifecycle.model_info(record.endpoint.url)
            except (httpx.HTTPError, ValueError):
                continue  # still restarting
            if info.pid != old_pid and info.state is not ModelState.loading:
                record.info, record.up, record.error = info, True, None
                record.checked_at = datetime.now(UTC)
                return info
        raise NotBack(f"service '{record.name}' at {record.endpoint.url} did not come back within "
                      f"{self.settings.load_timeout_s:.0f}s after its restart-mode unload; is it supervised "
                      "(mediamesh up, or compose's restart policy)? Its log says why it did not start")
