"""The memory-budget scheduler: which models are loaded, so their sum stays inside the budget.

Pure async code over a `ModelBackend` (the registry speaks HTTP; tests pass a fake). The
invariant — the bytes reserved by loading, loaded and unloading models never exceed the
budget — holds because a model's footprint is reserved *before* its load starts, victims
release theirs only once their unload has finished, and a measured footprint larger than the
reservation is only taken after room has been made for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager

from gateway.scheduler.idle import IdlePolicy
from gateway.scheduler.slots import HOLDING, BudgetExceeded, LoadFailed, ModelBackend, ModelSlot, mb
from shared.http.errors import Conflict, NotFound
from shared.schemas.gateway import SlotState

log = logging.getLogger("mediamesh.budget")


class MemoryBudget:
    def __init__(
        self, backend: ModelBackend, budget_bytes: int, *, room_timeout_s: float = 30.0,
        idle_ttl_s: float | None = None, retry_after_s: int = 5, idle: IdlePolicy | None = None,
    ) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, got {budget_bytes}; check budget and headroom")
        self.backend = backend
        self.budget_bytes = budget_bytes
        self.room_timeout_s = room_timeout_s
        self.idle = idle or IdlePolicy(idle_ttl_s)
        self._unloads: set[asyncio.Task[None]] = set()
        self.retry_after_s = retry_after_s
        self.slots: dict[str, ModelSlot] = {}
        self._changed = asyncio.Condition()

    def add(self, name: str, *, estimated_bytes: int = 0, pinned: bool = False, priority: int = 0) -> ModelSlot:
        slot = ModelSlot(name, estimated_bytes=estimated_bytes, pinned=pinned, priority=priority)
        self.slots[name] = slot
        return slot

    def slot(self, name: str) -> ModelSlot:
        if name not in self.slots:
            raise NotFound(f"unknown model '{name}'; known: {', '.join(sorted(self.slots)) or 'none'}")
        return self.slots[name]

    @property
    def reserved_bytes(self) -> int:
        return sum(s.reserved for s in self.slots.values() if s.state in HOLDING)

    @property
    def free_bytes(self) -> int:
        return self.budget_bytes - self.reserved_bytes

    # -- requests ---------------------------------------------------------------------------

    @asynccontextmanager
    async def use(self, name: str, keep_alive_s: float | None = None) -> AsyncIterator[ModelSlot]:
        """Hold `name` loaded for one request (loading it, and making room, if needed)."""
        slot = await self.acquire(name)
        try:
            yield slot
        finally:
            await self.release(name, keep_alive_s)

    async def acquire(self, name: str, timeout_s: float | None = None) -> ModelSlot:
        slot = self.slot(name)
        deadline = time.monotonic() + (self.room_timeout_s if timeout_s is None else timeout_s)
        async with self._changed:
            slot.waiting += 1
            try:
                return await self._acquire_locked(slot, deadline)
            finally:
                slot.waiting -= 1

    async def _acquire_locked(self, slot: ModelSlot, deadline: float) -> ModelSlot:
        while True:
            if slot.state is SlotState.loaded:
                slot.in_flight += 1
                slot.last_used = time.monotonic()
                return slot
            if slot.state in (SlotState.unloaded, SlotState.error, SlotState.down) and self._try_start_load(slot):
                continue  # now loading: wait for it like everyone else
            if slot.state is SlotState.loading and slot.load_task is not None:
                task = slot.load_task
                self._changed.release()
                try:
                    await asyncio.shield(task)
                finally:
                    await self._changed.acquire()
                continue
            await self._wait_for_change(slot, deadline)

    async def release(self, name: str, keep_alive_s: float | None = None) -> None:
        """End one request; its `keep_alive_s` (see `idle.py`) sets how long the model stays loaded."""
        slot = self.slot(name)
        async with self._changed:
            slot.in_flight = max(slot.in_flight - 1, 0)
            slot.last_used = time.monotonic()
            slot.keep_alive_s = self.idle.capped(keep_alive_s)
            if slot.keep_alive_s == 0 and slot.evictable:
                task = self._start_unload(slot)
                self._unloads.add(task)  # keep a reference until it is done (asyncio holds only weak ones)
                task.add_done_callback(self._unloads.discard)
            self._changed.notify_all()

    async def _wait_for_change(self, slot: ModelSlot, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BudgetExceeded(self._no_room_message(slot), self.retry_after_s)
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            raise BudgetExceeded(self._no_room_message(slot), self.retry_after_s) from None

    def _try_start_load(self, slot: ModelSlot) -> bool:
        """Reserve and start the load if there is room; else start evicting idle models. Lock held."""
        need = slot.need_bytes
        if need > self.budget_bytes:
            raise BudgetExceeded(
                f"model '{slot.name}' needs {mb(need)}, more than the whole budget of {mb(self.budget_bytes)}; "
                "raise GATEWAY_BUDGET_BYTES or use a smaller/quantised model", self.retry_after_s)
        if need <= self.free_bytes:
            slot.state, slot.reserved, slot.error = SlotState.loading, need, None
            slot.load_task = asyncio.create_task(self._load(slot))
            return True
        victims = self._pick_victims(need - self.free_bytes, exclude={slot.name})
        for victim in victims or []:
            self._start_unload(victim)
        return False

    def _pick_victims(self, shortfall: int, exclude: Iterable[str]) -> list[ModelSlot] | None:
        """Idle, unpinned models, lowest priority then least recently used, enough to cover the shortfall."""
        excluded = set(exclude)
        pending = sum(s.reserved for s in self.slots.values() if s.state is SlotState.unloading)
        candidates = sorted(
            (s for s in self.slots.values() if s.evictable and s.name not in excluded),
            key=lambda s: (s.priority, s.last_used),
        )
        victims: list[ModelSlot] = []
        covered = pending  # memory already on its way out counts
        for candidate in candidates:
            if covered >= shortfall:
                break
            victims.append(candidate)
            covered += candidate.reserved
        return victims if covered >= shortfall else None

    # -- loads and unloads ------------------------------------------------------------------

    async def _load(self, slot: ModelSlot) -> None:
        try:
            measured = await self.backend.load(slot.name)
        except Exception as exc:
            async with self._changed:
                slot.state, slot.reserved = SlotState.error, 0
                slot.error = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
                self._changed.notify_all()
            log.warning("loading %s failed: %s", slot.name, slot.error)
            raise LoadFailed(f"could not load model '{slot.name}': {slot.error}") from exc
        async with self._changed:
            slot.footprint_bytes = measured
            if measured > slot.reserved:
                await self._grow_reservation(slot, measured)
            else:
                slot.reserved = measured
            slot.state = SlotState.loaded if slot.state is SlotState.loading else slot.state
            slot.last_used = time.monotonic()
            self._changed.notify_all()

    async def _grow_reservation(self, slot: ModelSlot, measured: int) -> None:
        """The estimate was low: make room for the difference, or unload the model again. Lock held."""
        extra = measured - slot.reserved
        victims = self._pick_victims(extra - self.free_bytes, exclude={slot.name}) if extra > self.free_bytes else []
        if victims:
            await self._outside_lock(asyncio.gather(*[self._start_unload(v) for v in victims]))
        if extra <= self.free_bytes:
            slot.reserved = measured
            return
        log.warning("%s measured %s, above its estimate and the free budget; unloading it", slot.name, mb(measured))
        slot.state = SlotState.unloading
        try:
            await self._outside_lock(self.backend.unload(slot.name))
        finally:
            slot.state, slot.reserved = SlotState.unloaded, 0
        raise BudgetExceeded(
            f"model '{slot.name}' measured {mb(measured)} once loaded, more than its estimate; "
            + self._no_room_message(slot), self.retry_after_s)

    async def _outside_lock(self, awaitable: Awaitable[object]) -> None:
        self._changed.release()
        try:
            await awaitable
        finally:
            await self._changed.acquire()

    def _start_unload(self, slot: ModelSlot) -> asyncio.Task[None]:
        slot.state = SlotState.unloading
        return asyncio.create_task(self._unload(slot))

    async def _unload(self, slot: ModelSlot) -> None:
        try:
            await self.backend.unload(slot.name)
        except Exception as exc:  # the memory is still held: keep it counted, say why
            log.warning("unloading %s failed: %s", slot.name, exc)
            async with self._changed:
                slot.state, slot.error = SlotState.loaded, f"unload failed: {exc}"
                self._changed.notify_all()
            return
        async with self._changed:
            slot.state, slot.reserved = SlotState.unloaded, 0
            self._changed.notify_all()

    # -- manual control, idle time-to-live, re-synchronisation --------------------------------

    async def load(self, name: str) -> ModelSlot:
        """`POST /v1/models/{name}/load`: load (making room) without holding it for a request."""
        slot = await self.acquire(name)
        await self.release(name)
        return slot

    async def unload(self, name: str) -> ModelSlot:
        """`POST /v1/models/{name}/unload`: waits (up to the room timeout) for in-flight requests."""
        slot = self.slot(name)
        deadline = time.monotonic() + self.room_timeout_s
        async with self._changed:
            while slot.state in HOLDING:
                if slot.state is SlotState.loaded and slot.in_flight == 0:
                    task = self._start_unload(slot)
                    await self._outside_lock(task)
                    if slot.state is SlotState.loaded:
                        raise LoadFailed(f"could not unload model '{name}': {slot.error}")
                    continue
                if deadline <= time.monotonic():
                    raise Conflict(f"model '{name}' still has {slot.in_flight} request(s) in flight; retry later")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
        return slot

    def expires_in(self, slot: ModelSlot) -> float | None:
        ttl = self.idle.ttl_of(slot)
        if ttl is None or slot.pinned or slot.state is not SlotState.loaded or slot.in_flight:
            return None
        return max(ttl - (time.monotonic() - slot.last_used), 0.0)

    async def unload_idle(self) -> list[str]:
        """Unload models idle for longer than the time-to-live; returns their names."""
        async with self._changed:
            expired = [s for s in self.slots.values() if s.evictable and self.expires_in(s) == 0.0]
            tasks = [self._start_unload(s) for s in expired]
        await asyncio.gather(*tasks)
        return [s.name for s in expired]

    async def observe(
        self, name: str, service_state: str | None, *, estimated_bytes: int | None = None,
        footprint_bytes: int | None = None,
    ) -> None:
        """What the service itself reports (None: unreachable). A restarted service is not loaded."""
        slot = self.slot(name)
        async with self._changed:
            if estimated_bytes:
                slot.estimated_bytes = estimated_bytes
            if footprint_bytes:
                slot.footprint_bytes = footprint_bytes
            if slot.state in (SlotState.loading, SlotState.unloading):
                return  # our own transition is under way; its outcome will set the state
            if service_state is None:
                slot.state, slot.reserved, slot.error = SlotState.down, 0, "service unreachable"
            elif service_state in ("unloaded", "error") and slot.state is not SlotState.error:
                slot.state, slot.reserved = SlotState(service_state), 0
            elif service_state == "loaded" and slot.state is not SlotState.loaded:
                self._adopt_loaded(slot)
            elif service_state == "unloaded" and slot.state is SlotState.error:
                slot.state = SlotState.unloaded
            self._changed.notify_all()

    def _adopt_loaded(self, slot: ModelSlot) -> None:
        """Loaded behind our back (autoload, a manual call): count it, or unload it if it does not fit."""
        if slot.need_bytes <= self.free_bytes:
            slot.state, slot.reserved, slot.error = SlotState.loaded, slot.need_bytes, None
            slot.last_used = time.monotonic()
        else:
            log.warning("%s was loaded outside the gateway and does not fit the budget; unloading it", slot.name)
            slot.reserved = 0
            self._start_unload(slot)

    def _no_room_message(self, slot: ModelSlot) -> str:
        holders = sorted((s for s in self.slots.values() if s.state in HOLDING and s.name != slot.name),
                         key=lambda s: -s.reserved)
        held = ", ".join(f"{s.name} ({mb(s.reserved)}, {s.state.value}" + (", pinned" if s.pinned else "")
                         + (f", {s.in_flight} in flight" if s.in_flight else "") + ")" for s in holders)
        return (f"no room for model '{slot.name}' (needs {mb(slot.need_bytes)}; budget {mb(self.budget_bytes)}, "
                f"free {mb(self.free_bytes)}); memory held by: {held or 'nothing'}. Retry later, or free memory "
                "with POST /v1/models/{name}/unload")
