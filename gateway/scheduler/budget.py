"""The memory-budget scheduler: which models are loaded, so their sum stays inside each device's budget.

Async code over a `ModelBackend` (the registry speaks HTTP; tests pass a fake) and the budget
ledger (`ledger.py`, in Redis), which every gateway of the mesh shares. The invariant — the
bytes reserved on a device by loading, loaded and unloading models never exceed its budget —
holds because a model's footprint is reserved in the ledger, atomically, *before* its load
starts, victims release theirs only once their unload has finished, and a measured footprint
larger than the reservation is only taken after the ledger has granted the difference. The
slots here are this gateway's view; the ledger decides, and its view (in-flight requests and
last use through every gateway) picks the victims (`victims.py`). What the services and the ledger say
behind its back — a service's own report, lapsed leases — is applied in `resync.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar

from gateway.scheduler.idle import IdlePolicy
from gateway.scheduler.ledger import Answer, DeviceView, LedgerUnavailable, RedisLedger
from gateway.scheduler.resync import UNCHECKED, Resync
from gateway.scheduler.slots import HOLDING, BudgetExceeded, LoadFailed, ModelBackend, ModelSlot, mb
from gateway.scheduler.victims import no_room_message, pick_victims
from shared.http.errors import Conflict, NotFound
from shared.schemas.gateway import SlotState

log = logging.getLogger("mediamesh.budget")
T = TypeVar("T")

DEFAULT_DEVICE = "default"  # a service that has not said which device it sits on
LEDGER_RECHECK_S = 0.1  # how often a waiting request asks the ledger again (other gateways free memory too)


class MemoryBudget(Resync):
    def __init__(
        self, backend: ModelBackend, budget_bytes: int, *, ledger: RedisLedger, room_timeout_s: float = 30.0,
        idle_ttl_s: float | None = None, retry_after_s: int = 5, idle: IdlePolicy | None = None,
        device_budgets: Mapping[str, int] | None = None, locate: Callable[[str], Awaitable[object]] | None = None,
        use_linger_s: float = 0.0,
    ) -> None:
        if budget_bytes <= 0 or any(b <= 0 for b in (device_budgets or {}).values()):
            raise ValueError(f"budgets must be positive, got {budget_bytes}, {device_budgets}; check the headroom")
        self.backend = backend
        self.budget_bytes = budget_bytes  # each device's, unless `device_budgets` names it
        self.device_budgets = dict(device_budgets or {})
        self.ledger = ledger
        self.locate = locate  # asks a service which device it sits on (the registry's refresh)
        self.device_reserved: dict[str, int] = {}  # the ledger's last answer per device
        self._views: dict[str, DeviceView] = {}
        self.room_timeout_s = room_timeout_s
        self.idle = idle or IdlePolicy(idle_ttl_s)
        self._unloads: set[asyncio.Task[None]] = set()
        self.retry_after_s = retry_after_s
        self.slots: dict[str, ModelSlot] = {}
        self._changed = asyncio.Condition()
        # how long this gateway keeps its use of an idle model counted in the ledger: requests within it pay
        # no ledger round trip; other gateways cannot unload the model meanwhile (this one can, at once)
        self.use_linger_s = use_linger_s
        self._lingering: dict[str, asyncio.Task[None]] = {}

    def add(self, name: str, *, estimated_bytes: int = 0, pinned: bool = False, priority: int = 0) -> ModelSlot:
        slot = ModelSlot(name, estimated_bytes=estimated_bytes, pinned=pinned, priority=priority)
        self.slots[name] = slot
        return slot

    def slot(self, name: str) -> ModelSlot:
        if name not in self.slots:
            raise NotFound(f"unknown model '{name}'; known: {', '.join(sorted(self.slots)) or 'none'}")
        return self.slots[name]

    def device_of(self, slot: ModelSlot) -> str:
        return slot.device or DEFAULT_DEVICE

    def budget_of(self, device: str) -> int:
        return self.device_budgets.get(device, self.budget_bytes)

    def devices(self) -> list[str]:
        """The devices this gateway's models sit on (`default` while none has said, or one that has not holds
        memory there)."""
        known = {s.device for s in self.slots.values() if s.device is not None}
        if not known or any(s.device is None and s.held_bytes for s in self.slots.values()):
            known.add(DEFAULT_DEVICE)
        return sorted(known)

    @property
    def total_budget_bytes(self) -> int:
        return sum(self.budget_of(d) for d in self.devices())

    @property
    def reserved_bytes(self) -> int:
        """Reserved on this gateway's devices through every gateway, as the ledger last answered."""
        return sum(self.device_reserved.get(d, 0) for d in self.devices())

    @property
    def free_bytes(self) -> int:
        return self.total_budget_bytes - self.reserved_bytes

    def _note(self, device: str, answer: Answer) -> Answer:
        self.device_reserved[device] = answer.reserved
        return answer

    async def view(self, device: str) -> DeviceView:
        """The ledger's view of one device now (every gateway's reservations)."""
        found = self._views[device] = await self.ledger.view(device)
        self.device_reserved[device] = found.reserved
        return found

    def last_view(self, device: str) -> DeviceView | None:
        return self._views.get(device)

    async def refresh_views(self) -> list[DeviceView]:
        return [await self.view(device) for device in self.devices()]

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
        located = slot.device is not None or self.locate is None
        while True:
            if slot.state is SlotState.loaded:
                if slot.ledger_uses:  # already counted in the ledger: no other gateway can unload it
                    slot.in_flight += 1
                elif not await self._begin_use(slot):
                    continue  # unloaded through another gateway, or our lease lapsed: load it again
                slot.last_used = time.monotonic()
                return slot
            if slot.state in (SlotState.unloaded, SlotState.error, SlotState.down) and not located:
                located = True  # ask the service where it sits before reserving on its device
                await self._outside_lock(self.locate(slot.name))  # type: ignore[misc]
                continue
            if slot.state in (SlotState.unloaded, SlotState.error, SlotState.down) and await self._try_start_load(slot):
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

    async def _begin_use(self, slot: ModelSlot) -> bool:
        """Count one more request in flight here and in the ledger, so that no gateway unloads the model under
        it. The round trip runs outside the lock (the ledger decides; counted here first, no unload starts here);
        if the slot changed meanwhile (an observation, a reload), the answer is about a model that is gone."""
        device, generation = self.device_of(slot), slot.generation
        slot.in_flight += 1
        try:
            answer = self._note(device, await self._outside_lock(self.ledger.begin_use(device, slot.name)))
        except BaseException:
            slot.in_flight -= 1
            raise
        current = slot.generation == generation
        if answer.status == "ok" and current:
            slot.ledger_uses += 1
            return True
        slot.in_flight -= 1
        if answer.status == "ok":  # counted on a record that changed under us: take the count back, ask again
            with contextlib.suppress(LedgerUnavailable):
                self._note(device, await self._outside_lock(self.ledger.end_use(device, slot.name)))
        elif current and slot.state is SlotState.loaded:
            log.info("%s is %s in the ledger; loading it again", slot.name, answer.status)
            slot.state, slot.reserved = SlotState.unloaded, 0
        return False

    async def release(self, name: str, keep_alive_s: float | None = None) -> None:
        """End one request; its `keep_alive_s` (see `idle.py`) sets how long the model stays loaded."""
        slot = self.slot(name)
        async with self._changed:
            slot.in_flight = max(slot.in_flight - 1, 0)
            slot.last_used = time.monotonic()
            slot.keep_alive_s = self.idle.capped(keep_alive_s)
            if slot.keep_alive_s == 0 and slot.evictable:
                task = self._start_unload(slot)  # its unload ends the ledger's count first
                self._unloads.add(task)  # keep a reference until it is done (asyncio holds only weak ones)
                task.add_done_callback(self._unloads.discard)
            elif slot.in_flight == 0 and slot.ledger_uses:
                if self.use_linger_s > 0:
                    self._linger(slot)
                else:  # under the lock: no unload from here starts before the ledger has the count back
                    await self._end_uses(slot)
            self._changed.notify_all()

    async def _end_uses(self, slot: ModelSlot) -> None:
        """Give the ledger back this gateway's count of requests to the model (none is in flight here)."""
        uses, slot.ledger_uses = slot.ledger_uses, 0
        device = self.device_of(slot)
        try:
            for _ in range(uses):
                self._note(device, await self.ledger.end_use(device, slot.name))
        except LedgerUnavailable as exc:  # the requests are done; the count goes with the model's record
            log.warning("could not count the end of a request to %s: %s", slot.name, exc.detail)

    def _linger(self, slot: ModelSlot) -> None:
        """End the ledger's count once the model has been idle here for `use_linger_s`. Lock held."""
        if slot.name not in self._lingering:
            self._lingering[slot.name] = asyncio.create_task(self._end_uses_when_idle(slot))

    async def _end_uses_when_idle(self, slot: ModelSlot) -> None:
        while True:
            await asyncio.sleep(max(slot.last_used + self.use_linger_s - time.monotonic(), 0.001))
            async with self._changed:
                if slot.in_flight == 0 and time.monotonic() - slot.last_used < self.use_linger_s:
                    continue  # used again, and idle again since: wait out the rest
                del self._lingering[slot.name]  # in flight again: its release starts the next wait
                if slot.in_flight == 0 and slot.ledger_uses and slot.state is SlotState.loaded:  # else its unload does
                    await self._end_uses(slot)
                    self._changed.notify_all()
                return

    async def close(self) -> None:
        """Stop the lingering counts' timers (the gateway is stopping and leaves the ledger)."""
        tasks = list(self._lingering.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._lingering.clear()

    async def _wait_for_change(self, slot: ModelSlot, deadline: float) -> None:
        """Until something changes here, or a short while (other gateways free memory too), or the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BudgetExceeded(await self._no_room_message(slot), self.retry_after_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), min(remaining, LEDGER_RECHECK_S))

    async def _try_start_load(self, slot: ModelSlot) -> bool:
        """Reserve in the ledger and start the load if there is room; else start evicting idle models. Lock held."""
        need, device = slot.need_bytes, self.device_of(slot)
        budget = self.budget_of(device)
        if need > budget:
            raise BudgetExceeded(
                f"model '{slot.name}' needs {mb(need)}, more than the whole budget of {mb(budget)} of device "
                f"{device}; raise GATEWAY_BUDGET_BYTES (or this device's GATEWAY_DEVICE_BUDGETS entry) or use a "
                "smaller/quantised model", self.retry_after_s)
        answer = self._note(device, await self.ledger.reserve(
            device, slot.name, need, budget, priority=slot.priority, pinned=slot.pinned))
        if answer.status in ("granted", "joined"):  # joined: another gateway loads or holds it already
            slot.state, slot.reserved, slot.error = SlotState.loading, answer.bytes, None
            slot.load_task = asyncio.create_task(self._load(slot))
            return True
        if answer.status == "full":
            view = await self.view(device)
            own = view.holdings[slot.name].bytes if slot.name in view.holdings else 0  # its context, counted
            victims = pick_victims(self.slots, view, need - own - (budget - view.reserved), exclude={slot.name})
            for victim in victims or []:
                self._start_unload(victim)
        return False  # full, or being unloaded through another gateway: wait, and ask again

    # -- loads and unloads ------------------------------------------------------------------

    async def _load(self, slot: ModelSlot) -> None:
        device = self.device_of(slot)
        try:
            measured = await self.backend.load(slot.name)
        except Exception as exc:
            async with self._changed:
                slot.state, slot.reserved = SlotState.error, 0
                slot.error = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(LedgerUnavailable):  # else the reservation lapses with its lease
                    self._note(device, await self.ledger.unloaded(device, slot.name, slot.resident_bytes))
                self._changed.notify_all()
            log.warning("loading %s failed: %s", slot.name, slot.error)
            raise LoadFailed(f"could not load model '{slot.name}': {slot.error}") from exc
        async with self._changed:
            try:
                slot.footprint_bytes = measured
                if measured > slot.reserved:
                    await self._grow_reservation(slot, measured)
                else:
                    slot.reserved = measured
                    await self._resize(slot, measured, UNCHECKED)  # shrinking always fits
                if slot.state is SlotState.loading:
                    self._note(device, await self.ledger.mark_loaded(device, slot.name))
                    slot.state = SlotState.loaded
                slot.last_used = time.monotonic()
            except LedgerUnavailable:  # loaded, but not counted: the next poll counts it (or unloads it)
                slot.state, slot.reserved = SlotState.unloaded, 0
                raise
            finally:
                self._changed.notify_all()

    async def _resize(self, slot: ModelSlot, nbytes: int, budget: int) -> Answer:
        """Set the model's reservation in the ledger; a reservation that lapsed meanwhile is asked for anew."""
        device = self.device_of(slot)
        answer = self._note(device, await self.ledger.resize(device, slot.name, nbytes, budget))
        if answer.status == "missing":
            answer = self._note(device, await self.ledger.reserve(
                device, slot.name, nbytes, min(budget, self.budget_of(device)), priority=slot.priority,
                pinned=slot.pinned))
            if answer.status in ("granted", "joined") and answer.bytes != nbytes:
                answer = self._note(device, await self.ledger.resize(device, slot.name, nbytes, budget))
        return answer

    async def _grow_reservation(self, slot: ModelSlot, measured: int) -> None:
        """The estimate was low: make room for the difference, or unload the model again. Lock held."""
        device = self.device_of(slot)
        budget = self.budget_of(device)
        answer = await self._resize(slot, measured, budget)
        if answer.status not in ("ok", "granted", "joined"):
            view = await self.view(device)
            held = view.holdings[slot.name].bytes if slot.name in view.holdings else 0
            victims = pick_victims(self.slots, view, measured - held - (budget - view.reserved), exclude={slot.name})
            if victims:
                await self._outside_lock(asyncio.gather(*[self._start_unload(v) for v in victims]))
                answer = await self._resize(slot, measured, budget)
        if answer.status in ("ok", "granted", "joined"):
            slot.reserved = measured
            return
        log.warning("%s measured %s, above its estimate and the free budget; unloading it", slot.name, mb(measured))
        slot.state = SlotState.unloading
        try:
            await self._outside_lock(self.backend.unload(slot.name))
        finally:
            slot.state, slot.reserved = SlotState.unloaded, 0
            self._note(device, await self.ledger.unloaded(device, slot.name, slot.resident_bytes))
        raise BudgetExceeded(
            f"model '{slot.name}' measured {mb(measured)} once loaded, more than its estimate; "
            + await self._no_room_message(slot), self.retry_after_s)

    async def _outside_lock(self, awaitable: Awaitable[T]) -> T:
        self._changed.release()
        try:
            return await awaitable
        finally:
            await self._changed.acquire()

    def _start_unload(self, slot: ModelSlot, min_idle_s: float = 0.0) -> asyncio.Task[None]:
        """Unload unless the ledger says a request through some gateway holds it (or, with `min_idle_s`,
        another gateway used it that recently); then the slot goes back to what it was."""
        before, slot.state = slot.state, SlotState.unloading
        return asyncio.create_task(self._unload(slot, before, min_idle_s))

    async def _unload(self, slot: ModelSlot, before: SlotState = SlotState.loaded, min_idle_s: float = 0.0) -> None:
        device = self.device_of(slot)
        if slot.ledger_uses:  # idle here, but still counted (lingering): end it first, or the ledger says busy
            await self._end_uses(slot)
        try:
            answer = self._note(device, await self.ledger.begin_unload(device, slot.name, min_idle_s))
        except LedgerUnavailable as exc:
            answer = Answer("missing", self.device_reserved.get(device, 0), 0)
            log.warning("not unloading %s: %s", slot.name, exc.detail)
        if answer.status != "ok":
            async with self._changed:
                slot.state = before
                if answer.status in ("busy", "recent"):
                    slot.error = "in use through another gateway"
                self._changed.notify_all()
            return
        try:
            left = await self.backend.unload(slot.name)
        except Exception as exc:  # the memory is still held: keep it counted, say why
            log.warning("unloading %s failed: %s", slot.name, exc)
            async with self._changed:
                slot.state, slot.error = SlotState.loaded, f"unload failed: {exc}"
                self._note(device, await self.ledger.abort_unload(device, slot.name))
                self._changed.notify_all()
            return
        async with self._changed:
            slot.state, slot.reserved = SlotState.unloaded, 0
            if left is not None:
                slot.resident_bytes = left
            try:
                self._note(device, await self.ledger.unloaded(device, slot.name, slot.resident_bytes))
            finally:
                self._changed.notify_all()

    # -- manual control, idle time-to-live ----------------------------------------------------

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
                    if slot.state is SlotState.loaded and slot.error == "in use through another gateway":
                        raise Conflict(f"model '{name}' has requests in flight through another gateway; retry later")
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
            # not while another gateway has used it within the time-to-live
            tasks = [self._start_unload(s, self.idle.ttl_of(s) or 0.0) for s in expired]
        await asyncio.gather(*tasks)
        return [s.name for s in expired if s.state is not SlotState.loaded]

    async def _no_room_message(self, slot: ModelSlot) -> str:
        device = self.device_of(slot)
        try:
            view = await self.view(device)
        except LedgerUnavailable:
            view = self._views.get(device) or DeviceView(device, self.device_reserved.get(device, 0), 0, {})
        return no_room_message(slot, view, self.budget_of(device))
