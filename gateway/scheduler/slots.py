"""One model as the scheduler sees it, and the errors the scheduler answers with."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from shared.http.errors import ServiceError
from shared.schemas.gateway import SlotState

HOLDING = (SlotState.loading, SlotState.loaded, SlotState.unloading)


class ModelBackend(Protocol):
    async def load(self, name: str) -> int:
        """Load the model; return its measured footprint in bytes."""

    async def unload(self, name: str) -> int | None:
        """Unload the model; return what its process still holds on the device (its CUDA context; 0 once a
        restart-mode service has come back), None when unknown (no NVML)."""


class BudgetExceeded(ServiceError):
    """503 + Retry-After: no room could be made in time; the message names who holds the memory."""

    status_code = 503

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class LoadFailed(ServiceError):
    status_code = 503

    def __init__(self, detail: str, retry_after_s: int = 30) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


@dataclass
class ModelSlot:
    name: str
    estimated_bytes: int = 0
    footprint_bytes: int | None = None
    pinned: bool = False
    priority: int = 0
    reserved: int = 0
    in_flight: int = 0
    ledger_uses: int = 0  # requests counted in the ledger for this gateway: 1 while any is in flight here, or lingering
    waiting: int = 0  # requests waiting for this model to load (for memory, or for its load to finish)
    keep_alive_s: float | None = None  # the last request's keep_alive (capped); None: the model's idle TTL
    last_used: float = field(default_factory=time.monotonic)
    error: str | None = None
    load_task: asyncio.Task[None] | None = None
    # held on the GPU while not loaded: the CUDA context of a process that has touched it (NVML's figure)
    resident_bytes: int = 0
    restarts_on_unload: bool = False  # unload mode restart: unloading frees the context too
    overdue: int = 0  # inferences the service reports past its limit: they still hold the model's memory
    device: str | None = None  # the ledger's name of the device it sits on; None until the service says
    _state: SlotState = SlotState.unloaded
    # bumped by every change of state: a step that waited (on the ledger, on the service) checks it to tell
    # whether the slot it saw is still the slot it acts on
    generation: int = 0
    changed_at: float = field(default_factory=time.monotonic)  # when the state last changed

    @property
    def state(self) -> SlotState:
        return self._state

    @state.setter
    def state(self, value: SlotState) -> None:
        if value is not self._state:
            self._state, self.generation, self.changed_at = value, self.generation + 1, time.monotonic()
            if value not in HOLDING:
                self.ledger_uses = 0  # the ledger forgets a gateway's counts with the model's record

    @property
    def held_bytes(self) -> int:
        """What this model counts against the budget: its reservation, or its context while not loaded."""
        return self.reserved if self.state in HOLDING else self.resident_bytes

    @property
    def freed_by_unload(self) -> int:
        return self.reserved if self.restarts_on_unload else max(self.reserved - self.resident_bytes, 0)

    @property
    def need_bytes(self) -> int:
        return self.footprint_bytes if self.footprint_bytes is not None else self.estimated_bytes

    @property
    def evictable(self) -> bool:
        return self.state is SlotState.loaded and self.in_flight == 0 and not self.pinned and not self.overdue


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"
