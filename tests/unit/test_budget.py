"""MemoryBudget as pure async code over a fake backend: exact expectations for each rule."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gateway.api.models import model_status
from gateway.scheduler.budget import MemoryBudget
from gateway.scheduler.directory import ServiceRegistry
from gateway.scheduler.idle import IdlePolicy
from gateway.scheduler.slots import BudgetExceeded, LoadFailed
from gateway.settings import GatewaySettings
from shared.http.errors import Conflict
from shared.schemas.gateway import SlotState
from tests.support.ledger import fresh_ledger


class FakeBackend:
    """Models 'load' after `delay_s`; `sizes` gives what a load measures (default: the estimate)."""

    def __init__(self, budget: MemoryBudget | None = None, delay_s: float = 0.0) -> None:
        self.budget = budget
        self.delay_s = delay_s
        self.loaded: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.failing: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    async def load(self, name: str) -> int:
        self.calls.append(("load", name))
        await asyncio.sleep(self.delay_s)
        if name in self.failing:
            raise RuntimeError(f"{name} weights are corrupt")
        assert self.budget is not None
        size = self.sizes.get(name, self.budget.slots[name].estimated_bytes)
        self.loaded[name] = size
        return size

    async def unload(self, name: str) -> None:
        assert self.budget is not None and self.budget.slots[name].in_flight == 0, f"{name} cut while in flight"
        self.calls.append(("unload", name))
        await asyncio.sleep(self.delay_s)
        self.loaded.pop(name, None)


def make(budget_bytes: int = 100, delay_s: float = 0.0, **kwargs: Any) -> tuple[MemoryBudget, FakeBackend]:
    backend = FakeBackend(delay_s=delay_s)
    budget = MemoryBudget(backend, budget_bytes, ledger=fresh_ledger(),
                          room_timeout_s=kwargs.pop("room_timeout_s", 0.3), **kwargs)
    backend.budget = budget
    return budget, backend


async def settled(done: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Until background work (an unload started by the budget) is done: each step is a Redis round trip."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)


async def test_loads_on_demand_and_counts_in_flight() -> None:
    budget, backend = make()
    budget.add("a", estimated_bytes=40)
    async with budget.use("a") as slot:
        assert slot.state is SlotState.loaded and slot.in_flight == 1
        assert budget.reserved_bytes == 40
    assert slot.in_flight == 0 and backend.calls == [("load", "a")]
    async with budget.use("a"):
        pass
    assert backend.calls == [("load", "a")]  # loaded once, reused


async def test_concurrent_requests_share_one_load() -> None:
    budget, backend = make(delay_s=0.05)
    budget.add("a", estimated_bytes=40)
    await asyncio.gather(*(budget.load("a") for _ in range(10)))
    assert backend.calls == [("load", "a")]


async def test_evicts_least_recently_used_idle_model_first() -> None:
    budget, backend = make()
    for name in "abc":
        budget.add(name, estimated_bytes=40)
    await budget.load("a")
    await budget.load("b")
    async with budget.use("a"):
        pass  # a is now more recently used than b
    await budget.load("c")
    assert ("unload", "b") in backend.calls and set(backend.loaded) == {"a", "c"}


async def test_lower_priority_is_evicted_before_older_use() -> None:
    budget, backend = make()
    budget.add("important", estimated_bytes=40, priority=10)
    budget.add("cheap", estimated_bytes=40, priority=0)
    budget.add("new", estimated_bytes=40)
    await budget.load("important")
    await budget.load("cheap")
    await budget.load("new")
    assert set(backend.loaded) == {"important", "new"}


async def test_pinned_is_never_evicted() -> None:
    budget, backend = make()
    budget.add("pinned", estimated_bytes=60, pinned=True)
    budget.add("x", estimated_bytes=60)
    await budget.load("pinned")
    with pytest.raises(BudgetExceeded) as refused:
        await budget.load("x")
    assert "memory held by: pinned" in refused.value.detail and refused.value.headers["Retry-After"] == "5"
    assert set(backend.loaded) == {"pinned"}


async def test_in_flight_model_is_not_evicted_and_waiter_gets_503_naming_it() -> None:
    budget, backend = make(room_timeout_s=0.2)
    budget.add("busy", estimated_bytes=70)
    budget.add("other", estimated_bytes=70)
    async with budget.use("busy"):
        with pytest.raises(BudgetExceeded) as refused:
            await budget.load("other")
    detail = refused.value.detail
    assert "no room for model 'other'" in detail and "busy (0.0 MB, loaded, 1 in flight)" in detail
    assert ("unload", "busy") not in backend.calls


async def test_waiter_gets_the_memory_when_the_holder_finishes() -> None:
    budget, backend = make(room_timeout_s=2.0)
    budget.add("busy", estimated_bytes=70)
    budget.add("other", estimated_bytes=70)
    await budget.acquire("busy")
    waiter = asyncio.create_task(budget.load("other"))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await budget.release("busy")
    await waiter
    assert set(backend.loaded) == {"other"}


async def test_model_larger_than_budget_is_refused_at_once() -> None:
    budget, _ = make()
    budget.add("huge", estimated_bytes=101)
    with pytest.raises(BudgetExceeded, match="more than the whole budget"):
        await budget.load("huge")


async def test_failed_load_releases_its_reservation_and_says_why() -> None:
    budget, backend = make()
    budget.add("a", estimated_bytes=50)
    backend.failing.add("a")
    with pytest.raises(LoadFailed, match="weights are corrupt"):
        await budget.load("a")
    assert budget.slots["a"].state is SlotState.error and budget.reserved_bytes == 0
    backend.failing.clear()
    await budget.load("a")  # retried on the next request
    assert budget.slots["a"].state is SlotState.loaded


async def test_measured_footprint_replaces_the_estimate_and_evicts_if_larger() -> None:
    budget, backend = make()
    budget.add("a", estimated_bytes=40)
    budget.add("b", estimated_bytes=30)
    backend.sizes["b"] = 70
    await budget.load("a")
    await budget.load("b")
    assert budget.slots["b"].reserved == 70 and budget.slots["b"].footprint_bytes == 70
    assert set(backend.loaded) == {"b"} and budget.reserved_bytes <= 100


async def test_measured_footprint_that_cannot_fit_is_unloaded_again() -> None:
    budget, backend = make()
    budget.add("pinned", estimated_bytes=50, pinned=True)
    budget.add("b", estimated_bytes=30)
    backend.sizes["b"] = 70
    await budget.load("pinned")
    with pytest.raises(BudgetExceeded, match="more than its estimate"):
        await budget.load("b")
    assert set(backend.loaded) == {"pinned"} and budget.reserved_bytes == 50


async def test_idle_ttl_unloads_idle_unpinned_models() -> None:
    budget, backend = make(idle_ttl_s=0.05)
    budget.add("a", estimated_bytes=10)
    budget.add("p", estimated_bytes=10, pinned=True)
    await budget.load("a")
    await budget.load("p")
    assert await budget.unload_idle() == []
    await asyncio.sleep(0.06)
    assert await budget.unload_idle() == ["a"]
    assert set(backend.loaded) == {"p"}


async def test_manual_unload_waits_for_in_flight_then_conflicts() -> None:
    budget, backend = make(room_timeout_s=0.1)
    budget.add("a", estimated_bytes=10)
    await budget.acquire("a")
    with pytest.raises(Conflict, match="1 request"):
        await budget.unload("a")
    await budget.release("a")
    await budget.unload("a")
    assert backend.loaded == {} and budget.slots["a"].state is SlotState.unloaded


async def test_restarted_service_is_resynchronised_as_unloaded() -> None:
    budget, backend = make()
    budget.add("a", estimated_bytes=10)
    await budget.load("a")
    await budget.observe("a", None)
    assert budget.slots["a"].state is SlotState.down and budget.reserved_bytes == 0
    await budget.observe("a", "unloaded", estimated_bytes=12)
    assert budget.slots["a"].state is SlotState.unloaded and budget.slots["a"].estimated_bytes == 12
    await budget.load("a")
    assert backend.calls.count(("load", "a")) == 2


async def test_model_loaded_behind_our_back_is_counted_or_unloaded() -> None:
    budget, backend = make()
    budget.add("a", estimated_bytes=60)
    budget.add("b", estimated_bytes=60)
    await budget.observe("a", "loaded", footprint_bytes=60)
    assert budget.slots["a"].state is SlotState.loaded and budget.reserved_bytes == 60
    backend.loaded["b"] = 60
    await budget.observe("b", "loaded", footprint_bytes=60)
    await settled(lambda: "b" not in backend.loaded)
    assert "b" not in backend.loaded and budget.reserved_bytes == 60


async def test_a_per_model_ttl_unloads_that_model_and_not_another() -> None:
    budget, _ = make(idle=IdlePolicy(60, {"a": 0.05, "c": None}))
    for name in "abc":
        budget.add(name, estimated_bytes=20)
        await budget.load(name)
    assert budget.expires_in(budget.slots["c"]) is None  # null: never
    await asyncio.sleep(0.1)
    assert await budget.unload_idle() == ["a"]
    assert [budget.slots[n].state for n in "abc"] == [SlotState.unloaded, SlotState.loaded, SlotState.loaded]


async def test_keep_alive_zero_unloads_right_after_the_last_request() -> None:
    budget, backend = make(idle_ttl_s=60)
    budget.add("a", estimated_bytes=40)
    async with budget.use("a", keep_alive_s=0):
        async with budget.use("a", keep_alive_s=0):
            pass
        assert budget.slots["a"].state is SlotState.loaded  # one still in flight: never cut
    await settled(lambda: budget.slots["a"].state is SlotState.unloaded)
    assert budget.slots["a"].state is SlotState.unloaded and backend.calls == [("load", "a"), ("unload", "a")]
    assert budget.reserved_bytes == 0


async def test_keep_alive_sets_the_ttl_until_the_next_request_and_is_capped() -> None:
    budget, _ = make(idle_ttl_s=0.05)
    budget.add("a", estimated_bytes=40)
    async with budget.use("a", keep_alive_s=-1):
        pass
    assert budget.expires_in(budget.slots["a"]) is None  # kept loaded
    await asyncio.sleep(0.1)
    assert await budget.unload_idle() == []
    async with budget.use("a"):  # no keep_alive: back to the model's own TTL
        pass
    await asyncio.sleep(0.1)
    assert await budget.unload_idle() == ["a"]

    capped, _ = make(idle=IdlePolicy(600, max_keep_alive_s=30))
    capped.add("b", estimated_bytes=40)
    for asked, kept in ((-1, 30), (3600, 30), (10, 10), (None, None)):
        async with capped.use("b", keep_alive_s=asked):
            pass
        assert capped.slots["b"].keep_alive_s == kept


async def test_requests_waiting_for_a_load_are_counted() -> None:
    budget, _ = make(delay_s=0.1)
    budget.add("a", estimated_bytes=40)
    waiters = [asyncio.create_task(budget.load("a")) for _ in range(3)]
    await asyncio.sleep(0.03)
    assert budget.slots["a"].waiting == 3 and budget.slots["a"].in_flight == 0
    await asyncio.gather(*waiters)
    assert budget.slots["a"].waiting == 0


async def test_a_huge_keep_alive_is_reported_without_overflow() -> None:
    registry = ServiceRegistry(GatewaySettings(services={"a": "http://127.0.0.1:9"}, storage_enabled=False))
    slot = registry.budget.slots["a"]
    slot.state, slot.keep_alive_s = SlotState.loaded, 1e300
    assert model_status(registry, slot).expires_at is not None
    await registry.lifecycle.close()
