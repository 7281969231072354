"""What the services and the ledger say behind the budget's back: a service's own report of its model (a
restart, a manual load, its device and its measured memory), and the leases that keep this gateway's
reservations in the ledger. Part of `MemoryBudget` (budget.py), which holds the slots and the lock.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from gateway.scheduler.slots import HOLDING, ModelSlot
from shared.schemas.gateway import SlotState

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

    from gateway.scheduler.ledger import Answer, RedisLedger

log = logging.getLogger("mediamesh.budget")
UNCHECKED = 2**62  # a "budget" for figures that are facts (NVML measured them), not requests


class Resync:
    """The re-synchronisation half of `MemoryBudget`."""

    if TYPE_CHECKING:  # what it uses of MemoryBudget
        slots: dict[str, ModelSlot]
        ledger: RedisLedger
        locate: Callable[[str], Awaitable[object]] | None
        device_reserved: dict[str, int]
        _changed: asyncio.Condition

        def slot(self, name: str) -> ModelSlot: ...
        def device_of(self, slot: ModelSlot) -> str: ...
        def budget_of(self, device: str) -> int: ...
        def _note(self, device: str, answer: Answer) -> Answer: ...
        async def _resize(self, slot: ModelSlot, nbytes: int, budget: int) -> Answer: ...
        def _start_unload(self, slot: ModelSlot, min_idle_s: float = 0.0) -> asyncio.Task[None]: ...

    async def observe(
        self, name: str, service_state: str | None, *, estimated_bytes: int | None = None,
        footprint_bytes: int | None = None, device_bytes: int | None = None, overdue: int = 0,
        device: str | None = None, asked_at: float | None = None,
    ) -> None:
        """What the service itself reports (None: unreachable). A restarted service is not loaded.

        `device_bytes` is the process's GPU use as NVML measures it: a loaded model reserves exactly
        that, and a model that is not loaded still holds it (its CUDA context). `device` is the
        ledger's name of the device it sits on (`Placement.key`). `asked_at` (monotonic) is when the service
        was asked: a state that changed since (a load or unload finished meanwhile) is newer than the answer."""
        slot = self.slot(name)
        async with self._changed:
            if asked_at is not None and asked_at < slot.changed_at:
                return  # stale: the next poll reads the service again
            held_before = slot.held_bytes
            if estimated_bytes:
                slot.estimated_bytes = estimated_bytes
            if footprint_bytes:
                slot.footprint_bytes = footprint_bytes
            slot.overdue = overdue if service_state is not None else 0
            if slot.state in (SlotState.loading, SlotState.unloading):
                return  # our own transition is under way; its outcome will set the state
            if device is not None and device != slot.device:
                await self._move(slot, device)
            holding = slot.state in HOLDING
            if device_bytes is not None and service_state is not None:
                if service_state == "loaded" and slot.state is SlotState.loaded:
                    slot.reserved = device_bytes
                elif service_state != "loaded":
                    slot.resident_bytes = device_bytes
            if service_state is None:
                slot.state, slot.reserved, slot.error = SlotState.down, 0, "service unreachable"
                slot.resident_bytes = 0  # the process is gone, and the driver freed its context with it
            elif service_state in ("unloaded", "error") and slot.state is not SlotState.error:
                slot.state, slot.reserved = SlotState(service_state), 0
            elif service_state == "loaded" and slot.state is not SlotState.loaded:
                await self._adopt_loaded(slot)
            elif service_state == "unloaded" and slot.state is SlotState.error:
                slot.state = SlotState.unloaded
            await self._settle(slot, holding, held_before)
            self._changed.notify_all()

    async def _settle(self, slot: ModelSlot, was_holding: bool, held_before: int) -> None:
        """Tell the ledger what an observation changed: a model no longer loaded, a measured size."""
        device = self.device_of(slot)
        if was_holding and slot.state not in HOLDING:  # restarted, unloaded or gone behind our back
            self._note(device, await self.ledger.leave(device, slot.name))
        if slot.state is SlotState.loaded and slot.held_bytes != held_before:
            await self._resize(slot, slot.held_bytes, UNCHECKED)  # NVML measured it: a fact, not a request
        elif slot.state not in HOLDING and (slot.resident_bytes or held_before):
            self._note(device, await self.ledger.resident(device, slot.name, slot.resident_bytes))

    async def _move(self, slot: ModelSlot, device: str) -> None:
        """The service says it sits on another device than we counted it on: count it there."""
        if slot.state in HOLDING and slot.device is not None:
            log.warning("%s moved from device %s to %s; counting it there", slot.name, slot.device, device)
        if slot.state in HOLDING or slot.resident_bytes:
            self._note(self.device_of(slot), await self.ledger.leave(self.device_of(slot), slot.name))
            if slot.state in HOLDING:
                slot.state, slot.reserved = SlotState.unloaded, 0  # adopted again on the new device
        slot.device = device

    async def _adopt_loaded(self, slot: ModelSlot) -> None:
        """Loaded behind our back (autoload, a manual call, another gateway): join or take its reservation,
        or unload it if it does not fit."""
        device = self.device_of(slot)
        answer = self._note(device, await self.ledger.reserve(
            device, slot.name, slot.need_bytes, self.budget_of(device), priority=slot.priority, pinned=slot.pinned))
        if answer.status in ("granted", "joined"):
            slot.state, slot.reserved, slot.error = SlotState.loaded, answer.bytes, None
            slot.last_used = time.monotonic()
            self._note(device, await self.ledger.mark_loaded(device, slot.name))
        elif answer.status == "full":
            log.warning("%s was loaded outside the gateway and does not fit the budget; unloading it", slot.name)
            slot.reserved = 0
            self._start_unload(slot)
        # busy: another gateway is unloading it; the next poll sees it unloaded

    def held(self) -> list[tuple[str, str]]:
        """(device, model) of every reservation this gateway holds a lease on."""
        return [(self.device_of(s), s.name) for s in self.slots.values() if s.state in HOLDING or s.resident_bytes]

    async def renew_leases(self) -> None:
        """Extend this gateway's leases (every third of their time-to-live); a reservation the ledger lost
        meanwhile (its lease lapsed, Redis lost it) is taken again, or the model unloaded if it no longer fits."""
        by_device: dict[str, list[str]] = {}
        for device, name in self.held():
            by_device.setdefault(device, []).append(name)
        for device, names in by_device.items():
            self.device_reserved[device], missing = await self.ledger.renew(device, names)
            for name in missing:
                await self._retake(self.slots[name])

    async def _retake(self, slot: ModelSlot) -> None:
        """Another gateway unloaded it, or our lease lapsed: ask the service (its answer is adopted), if we can."""
        async with self._changed:
            lost = slot.state is SlotState.loaded
            if lost:
                log.warning("the ledger no longer has %s reserved (unloaded elsewhere, or the lease lapsed)", slot.name)
                slot.state, slot.reserved = SlotState.unloaded, 0
                if self.locate is None:
                    await self._adopt_loaded(slot)
            elif slot.state not in HOLDING and slot.resident_bytes:
                device = self.device_of(slot)
                self._note(device, await self.ledger.resident(device, slot.name, slot.resident_bytes))
            self._changed.notify_all()
        if lost and self.locate is not None:
            await self.locate(slot.name)  # still loaded there: observed, and reserved again if it fits
