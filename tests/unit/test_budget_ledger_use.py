"""How the budget counts requests in the shared ledger: a lingering count between requests, and answers that
arrive after the slot they were about has changed."""

from __future__ import annotations

import asyncio
import time

from gateway.scheduler.budget import DEFAULT_DEVICE, MemoryBudget
from gateway.scheduler.ledger import RedisLedger
from tests.support.ledger import fresh_ledger
from tests.unit.test_budget import FakeBackend, settled


class CountingLedger(RedisLedger):
    """The real ledger, counting the round trips that mark a request."""

    begun = 0

    async def begin_use(self, device: str, model: str):  # type: ignore[no-untyped-def]
        self.begun += 1
        return await super().begin_use(device, model)


def lingering_budget(linger_s: float) -> tuple[MemoryBudget, FakeBackend, CountingLedger]:
    ledger = CountingLedger(fresh_ledger().namespace, url=fresh_ledger().url)
    backend = FakeBackend()
    budget = MemoryBudget(backend, 100, ledger=ledger, room_timeout_s=0.3, use_linger_s=linger_s)
    backend.budget = budget
    budget.add("a", estimated_bytes=40)
    budget.add("b", estimated_bytes=40)
    budget.add("c", estimated_bytes=40)
    return budget, backend, ledger


async def in_flight_in_ledger(ledger: RedisLedger, model: str) -> int:
    view = await ledger.view(DEFAULT_DEVICE)
    return view.holdings[model].in_flight if model in view.holdings else 0


async def test_requests_within_the_linger_skip_the_ledger_and_keep_other_gateways_off() -> None:
    budget, _, ledger = lingering_budget(linger_s=0.3)
    other_gateway = fresh_ledger(ledger.namespace, owner="other-gateway")
    for _ in range(5):
        async with budget.use("a"):
            pass
    assert ledger.begun == 1  # one round trip for five back-to-back requests
    assert (await other_gateway.begin_unload(DEFAULT_DEVICE, "a")).status == "busy"

    await settled(lambda: budget.slots["a"].ledger_uses == 0, timeout_s=3.0)
    assert await in_flight_in_ledger(ledger, "a") == 0
    assert (await other_gateway.begin_unload(DEFAULT_DEVICE, "a")).status == "ok"
    await budget.close()
    await other_gateway.close()
    await ledger.close()


async def test_this_gateway_unloads_a_model_at_once_however_long_the_linger() -> None:
    budget, backend, ledger = lingering_budget(linger_s=60.0)
    async with budget.use("a"):
        pass
    await budget.unload("a")
    assert "a" not in backend.loaded and budget.slots["a"].state.value == "unloaded"
    assert "a" not in (await ledger.view(DEFAULT_DEVICE)).holdings
    await budget.close()
    await ledger.close()


async def test_room_is_made_from_lingering_models_least_recently_used_first() -> None:
    budget, backend, ledger = lingering_budget(linger_s=60.0)
    for name in ("a", "b", "a"):  # a is used again, without a round trip: b is now the least recent
        async with budget.use(name):
            pass
    async with budget.use("c"):
        assert sorted(backend.loaded) == ["a", "c"]
    await budget.close()
    await ledger.close()


async def test_an_observation_older_than_a_finished_load_is_not_applied() -> None:
    budget, backend, ledger = lingering_budget(linger_s=0.0)
    asked_at = time.monotonic()  # the poller asks the service: not loaded yet
    await asyncio.sleep(0.001)
    await budget.load("a")  # meanwhile the gateway loads it
    await budget.observe("a", "unloaded", asked_at=asked_at)  # the poller's answer arrives late
    assert budget.slots["a"].state.value == "loaded" and "a" in backend.loaded
    assert "a" in (await ledger.view(DEFAULT_DEVICE)).holdings

    await budget.observe("a", "unloaded", asked_at=time.monotonic())  # a fresh one: the service restarted
    assert budget.slots["a"].state.value == "unloaded"
    await budget.close()
    await ledger.close()
