"""Which models to unload to make room on a device, and the 503 message when no room can be made.

Pure functions of the ledger's view of the device (every gateway's reservations) and this
gateway's slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.scheduler.ledger import DeviceView, Holding
from gateway.scheduler.slots import ModelSlot, mb
from shared.schemas.gateway import SlotState


def pick_victims(slots: Mapping[str, ModelSlot], view: DeviceView, shortfall: int,
                 exclude: Iterable[str]) -> list[ModelSlot] | None:
    """Idle, unpinned models of the device, lowest priority then least recently used through any gateway,
    enough to cover the shortfall; None when all of them would not."""
    excluded = set(exclude)
    pending = sum(freed_by_unload(slots[h.model], h.bytes) if h.model in slots else h.bytes
                  for h in view.holdings.values() if h.state == "unloading")
    candidates = sorted(  # in flight: through any gateway, not counting this one's lingering count
        (h for h in view.holdings.values()
         if h.state == "loaded" and h.model in slots and h.in_flight <= slots[h.model].ledger_uses
         and not h.pinned and h.model not in excluded and evictable_here(slots[h.model])),
        key=lambda h: (h.priority, *recency(slots[h.model], h)),
    )
    victims: list[ModelSlot] = []
    covered = pending  # memory already on its way out counts
    for candidate in candidates:
        if covered >= shortfall:
            break
        victims.append(slots[candidate.model])
        covered += freed_by_unload(slots[candidate.model], candidate.bytes)
    return victims if covered >= shortfall else None


def freed_by_unload(slot: ModelSlot, held: int) -> int:
    """A release-mode unload leaves the process's CUDA context behind; a restart frees it too."""
    return held if slot.restarts_on_unload else max(held - slot.resident_bytes, 0)


def recency(slot: ModelSlot, holding: Holding) -> tuple[bool, float]:
    """How recently a model was used, for least-recently-used order. The ledger's order of uses, except for
    the models this gateway's lingering count holds: its requests since have not told the ledger, and they
    were used within the linger, later than any model whose count has ended."""
    return (True, slot.last_used) if slot.ledger_uses else (False, float(holding.last_used))


def evictable_here(slot: ModelSlot) -> bool:
    """Loaded and idle here, or loaded through another gateway only (the ledger says it is idle there)."""
    return slot.evictable or (slot.state in (SlotState.unloaded, SlotState.error) and not slot.pinned)


def no_room_message(slot: ModelSlot, view: DeviceView, budget: int) -> str:
    """Who holds the device's memory, through every gateway (the ledger's view)."""
    holders = sorted((h for h in view.holdings.values() if h.model != slot.name), key=lambda h: -h.bytes)
    held = ", ".join(f"{h.model} ({mb(h.bytes)}, {h.state}" + (", pinned" if h.pinned else "")
                     + (f", {h.in_flight} in flight" if h.in_flight else "") + ")" for h in holders)
    return (f"no room for model '{slot.name}' (needs {mb(slot.need_bytes)}; budget {mb(budget)} of device "
            f"{view.device}, free {mb(budget - view.reserved)}); memory held by: {held or 'nothing'}. Retry later, "
            "or free memory with POST /v1/models/{name}/unload")
