"""Health polling: every few seconds each service's `/v1/model` is read into the registry.

The same loop keeps pinned models loaded (a pinned model whose service restarted, or came up
late, is loaded again) and unloads models idle past their time-to-live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING

from shared.http.errors import ServiceError
from shared.schemas.gateway import SlotState

if TYPE_CHECKING:
    from gateway.scheduler.directory import ServiceRegistry

log = logging.getLogger("mediamesh.registry")


class HealthPoller:
    def __init__(self, registry: ServiceRegistry, interval_s: float, pinned: list[str]) -> None:
        self.registry, self.interval_s, self.pinned = registry, interval_s, pinned
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """One round now (so the first requests see real states), then every `interval_s`."""
        await self.registry.refresh_all()
        self._loop = asyncio.create_task(self._poll_forever())
        for name in self.pinned:
            self._spawn(self._load_pinned(name))

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.poll_once()
            except Exception:  # keep polling; one bad round must not stop health checks
                log.exception("health polling round failed")

    async def poll_once(self) -> None:
        await self.registry.refresh_all()
        self._reload_pinned()
        unloaded = await self.registry.budget.unload_idle()
        if unloaded:
            log.info("idle time-to-live unloaded %s", ", ".join(unloaded))

    def _reload_pinned(self) -> None:
        """A pinned model whose service restarted (or came up late) is loaded again."""
        for name in self.pinned:
            if self.registry.records[name].up and self.registry.budget.slots[name].state in (
                SlotState.unloaded, SlotState.down,
            ):
                self._spawn(self._load_pinned(name))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # keep a reference until it is done (asyncio holds only weak ones)
        task.add_done_callback(self._tasks.discard)

    async def _load_pinned(self, name: str) -> None:
        try:
            await self.registry.budget.load(name)
        except ServiceError as exc:
            log.warning("pinned model %s could not be loaded at start: %s", name, exc.detail)
