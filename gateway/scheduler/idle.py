"""How long an idle model stays loaded: per-model time-to-live and a request's `keep_alive`.

`keep_alive` is Ollama's: 0 unloads the model right after the request, a negative value keeps it
loaded, anything else is seconds; it replaces the model's own TTL until the next request says
otherwise. `max_keep_alive_s` is the admin's cap, so no caller can pin memory for good.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.scheduler.slots import ModelSlot


@dataclass(frozen=True)
class IdlePolicy:
    default_ttl_s: float | None = None  # None: never
    ttl_by_model: dict[str, float | None] = field(default_factory=dict)
    max_keep_alive_s: float | None = None  # None: no cap

    def capped(self, keep_alive_s: float | None) -> float | None:
        """A request's keep_alive within the cap ("forever" included)."""
        if keep_alive_s is None or self.max_keep_alive_s is None:
            return keep_alive_s
        if keep_alive_s < 0 or keep_alive_s > self.max_keep_alive_s:
            return self.max_keep_alive_s
        return keep_alive_s

    def ttl_of(self, slot: ModelSlot) -> float | None:
        """The last request's keep_alive, else the model's own TTL, else the default; None: never."""
        if slot.keep_alive_s is not None:
            return None if slot.keep_alive_s < 0 else slot.keep_alive_s
        return self.ttl_by_model.get(slot.name, self.default_ttl_s)
