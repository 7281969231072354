"""The budget ledger's Lua scripts, against real Redis, checked step by step against a model in Python.

Three gateways share one device; each rule is one ledger operation by one of them (or one
gateway dying: its leases lapse), mostly in the order a gateway makes them, one call in eight
out of it. After every step the device's reservations never exceed the
budget, a request in flight always holds a loaded model, and Redis agrees with the model on
every reservation, its state, its holders and its requests in flight.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gateway.scheduler.ledger import RedisLedger
from tests.support.ledger import fresh_ledger, fresh_namespace

BUDGET = 100
DEVICE = "node/GPU-test"
GATEWAYS = ("g1", "g2", "g3")
gateways = st.sampled_from(GATEWAYS)
models = st.sampled_from(["a", "b"])
sizes = st.integers(0, 70)
strays = st.integers(0, 7).map(lambda n: n == 0)  # one call in eight off the protocol


@dataclass
class Reservation:
    bytes: int
    state: str
    holders: set[str] = field(default_factory=set)
    in_flight: dict[str, int] = field(default_factory=dict)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.namespace = fresh_namespace()
        self.ledgers = {g: fresh_ledger(self.namespace, owner=g) for g in GATEWAYS}
        self.expected: dict[str, Reservation] = {}

    def run(self, coro: object) -> object:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def call(self, gateway: str, op: str, model: str, *args: int) -> str:
        answer = self.run(getattr(self.ledgers[gateway], op)(DEVICE, model, *args))
        assert answer.reserved == self.total(), (op, answer, self.expected)
        return answer.status  # type: ignore[attr-defined,no-any-return]

    def total(self) -> int:
        return sum(r.bytes for r in self.expected.values())

    def protocol_allows(self, model: str, gateway: str, stray: bool, *, states: tuple[str, ...] = (),
                        in_flight: bool = False) -> bool:
        """Most of the time a gateway follows the protocol (ends only requests it began, says unloaded only
        after begin_unload or a failed load); one step in eight it does not, which the ledger must survive."""
        found = self.expected.get(model)
        if stray:
            return True
        if found is None or gateway not in found.holders:
            return False
        return found.in_flight.get(gateway, 0) > 0 if in_flight else found.state in states

    def held_by(self, gateway: str, model: str) -> Reservation | None:
        found = self.expected.get(model)
        if found is not None:
            found.holders.add(gateway)
        return found

    @rule(gateway=gateways, model=models, need=sizes)
    def reserve(self, gateway: str, model: str, need: int) -> None:
        found = self.expected.get(model)
        if found is not None:
            want = "busy" if found.state == "unloading" else "joined"
            if want == "joined":
                found.holders.add(gateway)
        elif self.total() + need > BUDGET:
            want = "full"
        else:
            want, self.expected[model] = "granted", Reservation(need, "loading", {gateway})
        assert self.call(gateway, "reserve", model, need, BUDGET) == want

    @rule(gateway=gateways, model=models, need=sizes)
    def load(self, gateway: str, model: str, need: int) -> None:
        """What a gateway does most: reserve, and once the service has loaded it, mark it loaded."""
        self.reserve(gateway, model, need)
        if model in self.expected and gateway in self.expected[model].holders:
            self.mark_loaded(gateway, model)

    @rule(gateway=gateways, model=models, need=sizes)
    def resize(self, gateway: str, model: str, need: int) -> None:
        found = self.expected.get(model)
        if found is None:
            want = "missing"
        elif need > found.bytes and self.total() - found.bytes + need > BUDGET:
            want = "full"
        else:
            want, found.bytes = "ok", need
            found.holders.add(gateway)
        assert self.call(gateway, "resize", model, need, BUDGET) == want

    @rule(gateway=gateways, model=models)
    def mark_loaded(self, gateway: str, model: str) -> None:
        found = self.held_by(gateway, model)
        if found is not None and found.state == "loading":
            found.state = "loaded"
        want = "missing" if found is None else "ok" if found.state == "loaded" else found.state
        assert self.call(gateway, "mark_loaded", model) == want

    @rule(gateway=gateways, model=models)
    def begin_use(self, gateway: str, model: str) -> None:
        found = self.expected.get(model)
        want = "missing" if found is None else "ok" if found.state == "loaded" else found.state
        if found is not None and want == "ok":
            found.holders.add(gateway)
            found.in_flight[gateway] = found.in_flight.get(gateway, 0) + 1
        assert self.call(gateway, "begin_use", model) == want

    @rule(gateway=gateways, model=models, stray=strays)
    def end_use(self, gateway: str, model: str, stray: bool) -> None:
        if not self.protocol_allows(model, gateway, stray, in_flight=True):
            return
        found = self.held_by(gateway, model)
        if found is not None:
            left = found.in_flight.pop(gateway, 0) - 1
            if left > 0:
                found.in_flight[gateway] = left
        assert self.call(gateway, "end_use", model) == ("missing" if found is None else "ok")

    @rule(gateway=gateways, model=models)
    def begin_unload(self, gateway: str, model: str) -> None:
        found = self.expected.get(model)
        if found is None:
            want, self.expected[model] = "ok", Reservation(0, "unloading", {gateway})
        elif found.state != "loaded":
            want = found.state
        elif sum(found.in_flight.values()):
            want = "busy"
        else:
            want, found.state = "ok", "unloading"
            found.holders.add(gateway)
        assert self.call(gateway, "begin_unload", model) == want

    @rule(gateway=gateways, model=models, stray=strays)
    def abort_unload(self, gateway: str, model: str, stray: bool) -> None:
        if not self.protocol_allows(model, gateway, stray, states=("unloading",)):
            return
        found = self.held_by(gateway, model)
        if found is not None and found.state == "unloading":
            found.state = "loaded"
        assert self.call(gateway, "abort_unload", model) == ("missing" if found is None else "ok")

    @rule(gateway=gateways, model=models, stray=strays)
    def unloaded(self, gateway: str, model: str, stray: bool) -> None:
        if not self.protocol_allows(model, gateway, stray, states=("unloading", "loading")):
            return
        self.expected.pop(model, None)
        assert self.call(gateway, "unloaded", model) == "ok"

    @rule(gateway=gateways, model=models)
    def leave(self, gateway: str, model: str) -> None:
        found = self.expected.get(model)
        if found is not None:
            found.holders.discard(gateway)
            found.in_flight.pop(gateway, None)
            if not found.holders:
                del self.expected[model]
        assert self.call(gateway, "leave", model) == ("missing" if found is None else "ok")

    @rule(gateway=gateways)
    def gateway_dies(self, gateway: str) -> None:
        """Its leases lapse: renewed for 1 ms by a copy of it, then left to expire."""
        held = sorted(m for m, r in self.expected.items() if gateway in r.holders)
        dying = RedisLedger(self.namespace, owner=gateway, lease_ttl_s=0.001, url=self.ledgers[gateway].url)
        self.run(dying.renew(DEVICE, held))
        self.run(asyncio.sleep(0.005))
        self.run(dying.close())
        for model in held:
            found = self.expected[model]
            found.holders.discard(gateway)
            found.in_flight.pop(gateway, None)
            if not found.holders:
                del self.expected[model]

    @invariant()
    def redis_agrees_and_the_budget_holds(self) -> None:
        view = self.run(self.ledgers["g1"].view(DEVICE))
        assert view.reserved <= BUDGET  # type: ignore[attr-defined]
        assert view.reserved == sum(h.bytes for h in view.holdings.values())  # type: ignore[attr-defined]
        seen = {name: (h.bytes, h.state, set(h.holders), h.in_flight)
                for name, h in view.holdings.items()}  # type: ignore[attr-defined]
        wanted = {name: (r.bytes, r.state, r.holders, sum(r.in_flight.values())) for name, r in self.expected.items()}
        assert seen == wanted
        for holding in view.holdings.values():  # type: ignore[attr-defined]
            assert not holding.in_flight or holding.state == "loaded", holding

    def teardown(self) -> None:
        for ledger in self.ledgers.values():
            self.run(ledger.close())
        self.loop.close()


LedgerMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=60, deadline=None)
TestLedgerAgainstModel = LedgerMachine.TestCase
