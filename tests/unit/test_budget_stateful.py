"""Random interleavings of requests, loads, unloads, failures and restarts never break the budget.

Each rule starts or finishes work on one event loop; `run` lets the loop make progress, so
loads, unloads and waiting requests genuinely overlap. The budget's ledger is the real one in
Redis (a namespace per example), and the invariant is read from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gateway.scheduler.budget import DEFAULT_DEVICE, MemoryBudget
from gateway.scheduler.slots import HOLDING
from shared.schemas.gateway import SlotState
from tests.support.ledger import fresh_ledger
from tests.unit.test_budget import FakeBackend

BUDGET = 100
MODELS = {"a": 30, "b": 40, "c": 50, "d": 20, "pinned": 20}
names = st.sampled_from(sorted(MODELS))


class BudgetMachine(RuleBasedStateMachine):
    use_linger_s = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.backend = FakeBackend(delay_s=0.001)
        self.ledger = fresh_ledger()
        self.budget = MemoryBudget(self.backend, BUDGET, ledger=self.ledger, room_timeout_s=0.01, idle_ttl_s=0.0,
                                   use_linger_s=self.use_linger_s)
        self.backend.budget = self.budget
        for name, size in MODELS.items():
            self.budget.add(name, estimated_bytes=size, pinned=name == "pinned", priority=size % 3)
        self.holders: list[asyncio.Task[object]] = []
        self.background: list[asyncio.Task[object]] = []
        self.restarted: set[str] = set()  # requests to these may have been lost with the process

    def spawn(self, coro: object) -> asyncio.Task[object]:
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        self.background.append(task)
        return task

    def run(self, seconds: float = 0.0) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    @rule(name=names)
    def request(self, name: str) -> None:
        self.holders.append(self.spawn(self.budget.acquire(name)))

    @rule(index=st.integers(0, 1000), keep_alive=st.sampled_from([None, 0.0, -1.0, 0.01]))
    def finish_request(self, index: int, keep_alive: float | None) -> None:
        # drawn independently of timing (which request is done varies run to run; hypothesis needs
        # the same draws on replay): pick one, release it if it got the model, forget it if it failed
        if not self.holders:
            return
        task = self.holders[index % len(self.holders)]
        if not task.done():
            return
        self.holders.remove(task)
        if not task.exception():
            # keep_alive 0 starts an unload from inside release: it must not break the budget either
            self.spawn(self.budget.release(task.result().name, keep_alive))  # type: ignore[attr-defined]

    @rule(name=names)
    def manual_load(self, name: str) -> None:
        self.spawn(self.budget.load(name))

    @rule(name=names)
    def manual_unload(self, name: str) -> None:
        self.spawn(self.budget.unload(name))

    @rule(name=names, fail=st.booleans())
    def toggle_failure(self, name: str, fail: bool) -> None:
        (self.backend.failing.add if fail else self.backend.failing.discard)(name)

    @rule(name=names, size=st.integers(10, 60))
    def measured_size(self, name: str, size: int) -> None:
        self.backend.sizes[name] = size

    @rule(name=names)
    def service_restarted(self, name: str) -> None:
        if name in self.backend.loaded and self.budget.slots[name].in_flight == 0:
            self.backend.loaded.pop(name)
            self.restarted.add(name)
            # what the poller saw now; by the time it is applied the gateway may have loaded the model again
            self.spawn(self.budget.observe(name, "unloaded", asked_at=time.monotonic()))

    @rule()
    def idle_reaper(self) -> None:
        self.spawn(self.budget.unload_idle())

    @rule(seconds=st.sampled_from([0.0, 0.001, 0.005, 0.02]))
    def wait(self, seconds: float) -> None:
        self.run(seconds)

    @invariant()
    def reservations_fit_the_budget(self) -> None:
        view = self.loop.run_until_complete(self.ledger.view(DEFAULT_DEVICE))
        assert view.reserved <= BUDGET, (view, self.budget.slots)

    @invariant()
    def waiting_and_in_flight_counts_are_never_negative(self) -> None:
        assert all(s.waiting >= 0 and s.in_flight >= 0 for s in self.budget.slots.values())

    @invariant()
    def every_loaded_model_is_accounted_for(self) -> None:
        for name in self.backend.loaded:
            assert self.budget.slots[name].state in HOLDING, (name, self.budget.slots[name])

    @invariant()
    def requests_in_flight_hold_a_loaded_model(self) -> None:
        for name, slot in self.budget.slots.items():
            if slot.in_flight and name not in self.restarted:
                assert name in self.backend.loaded and slot.state in HOLDING, slot

    @invariant()
    def requests_in_flight_are_counted_in_the_ledger(self) -> None:
        # what keeps every other gateway from unloading the model under them
        # granted before the view is read: the loop runs meanwhile, and a request granted then was counted after
        granted = {task.result().name for task in self.holders if task.done() and not task.exception()}  # type: ignore[attr-defined]
        view = self.loop.run_until_complete(self.ledger.view(DEFAULT_DEVICE))
        for name in granted - self.restarted:
            if self.budget.slots[name].state is SlotState.loaded:
                assert name in view.holdings and view.holdings[name].in_flight >= 1, (self.budget.slots[name], view)

    def teardown(self) -> None:
        for task in self.holders:
            if task.done() and not task.exception():
                self.loop.run_until_complete(self.budget.release(task.result().name))  # type: ignore[attr-defined]
        self.run(0.05)
        for task in self.background:
            task.cancel()
        with contextlib.suppress(BaseException):
            self.loop.run_until_complete(asyncio.gather(*self.background, return_exceptions=True))
        self.loop.run_until_complete(self.budget.close())
        self.loop.run_until_complete(self.ledger.close())
        self.loop.close()


class LingeringBudgetMachine(BudgetMachine):
    """The same, with each request's count kept in the ledger a while after it ends (the gateway's default)."""

    use_linger_s = 0.003


for machine in (BudgetMachine, LingeringBudgetMachine):
    machine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestBudgetInvariant = BudgetMachine.TestCase
TestLingeringBudgetInvariant = LingeringBudgetMachine.TestCase
