"""The budget on NVML's figures: contexts of unloaded services, restart unloads, the card reconciled.

NVML itself is the fake of `tests/support/fake_nvml.py` (pynvml's call signatures, figures
plausible for an RTX 3050 6 GB, not measured); the budget runs over a backend that answers what
a service on such a card answers: a load returns the process's whole use (context included), a
release unload leaves the context behind, a restart unload leaves nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest
import torch

from gateway.scheduler.budget import MemoryBudget
from gateway.scheduler.directory import ServiceRegistry
from gateway.scheduler.reconcile import Reading, reconcile
from gateway.scheduler.slots import BudgetExceeded
from gateway.settings import GatewaySettings
from shared.kit import nvml
from shared.kit.device_use import DeviceMeter
from shared.schemas.gateway import SlotState
from shared.schemas.model import DeviceUse, ModelInfo, ModelState
from tests.support.fake_nvml import CONTEXT_BYTES, DRIVER_BYTES, TOTAL_BYTES, UUID, FakeCard, FakePynvml
from tests.support.ledger import fresh_ledger

MIB = 1024 * 1024


@pytest.fixture
def card(tmp_path: Path) -> Iterator[FakeCard]:
    card = FakeCard(tmp_path / "card.json")
    nvml.use_library(FakePynvml(card))
    yield card
    nvml.use_library(None)


def test_nvml_reads_the_card_and_this_process_on_it(card: FakeCard) -> None:
    meter = nvml.nvml()
    assert meter.process_bytes(0) == 0  # not on the card yet: no context
    card.set_process(os.getpid(), 700 * MIB)
    device = meter.device(0)
    assert device is not None and (device.uuid, device.total_bytes) == (UUID, TOTAL_BYTES)
    assert device.total_bytes - device.free_bytes == DRIVER_BYTES + 700 * MIB
    assert meter.device(UUID.removeprefix("GPU-")) == device  # torch spells the UUID without the prefix
    assert meter.process_bytes(0) == 700 * MIB


def test_without_a_driver_every_figure_is_none() -> None:
    meter = nvml.Nvml(pynvml)  # this machine has no NVIDIA driver: nvmlInit fails
    assert not meter.available() and meter.error and "NVML" in meter.error
    assert meter.device(0) is None and meter.process_bytes(0) is None and meter.devices() == []


def test_a_process_that_touched_the_card_reports_context_and_the_rest(card: FakeCard) -> None:
    meter = DeviceMeter(torch.device("cpu"))
    assert meter.measure() is None  # never touched a GPU: nothing to report
    card.set_process(os.getpid(), CONTEXT_BYTES)  # what creating the context does
    meter.before_first_load()
    card.set_process(os.getpid(), CONTEXT_BYTES + 900 * MIB)  # weights and a library's own allocations
    use = meter.measure()
    assert use is not None and use.process_bytes == CONTEXT_BYTES + 900 * MIB
    assert (use.context_bytes, use.other_bytes) == (CONTEXT_BYTES, 900 * MIB)


class CardBackend:
    """What services on one card answer: a load's figure includes the context; `restart` unloads free it."""

    def __init__(self, sizes: dict[str, int], restart: set[str]) -> None:
        self.sizes, self.restart = sizes, restart
        self.calls: list[tuple[str, str]] = []

    async def load(self, name: str) -> int:
        self.calls.append(("load", name))
        return CONTEXT_BYTES + self.sizes[name]

    async def unload(self, name: str) -> int | None:
        self.calls.append(("unload", name))
        await asyncio.sleep(0)
        return 0 if name in self.restart else CONTEXT_BYTES


def budget_of(budget_bytes: int, sizes: dict[str, int], restart: frozenset[str] = frozenset()) -> MemoryBudget:
    budget = MemoryBudget(CardBackend(sizes, set(restart)), budget_bytes, ledger=fresh_ledger(), room_timeout_s=0.3)
    for name, size in sizes.items():
        budget.add(name, estimated_bytes=size + CONTEXT_BYTES).restarts_on_unload = name in restart
    return budget


async def test_an_unloaded_service_keeps_its_context_counted() -> None:
    budget = budget_of(2000 * MIB, {"clip": 600 * MIB})
    await budget.load("clip")
    assert budget.reserved_bytes == CONTEXT_BYTES + 600 * MIB
    await budget.unload("clip")
    slot = budget.slots["clip"]
    assert (slot.state, slot.reserved, slot.resident_bytes) == (SlotState.unloaded, 0, CONTEXT_BYTES)
    assert budget.reserved_bytes == CONTEXT_BYTES
    await budget.load("clip")  # its own context is part of what it needs again: counted once
    assert budget.reserved_bytes == CONTEXT_BYTES + 600 * MIB


async def test_evicting_a_release_mode_model_frees_only_its_weights() -> None:
    # 1500 MiB: a (262 + 800) loaded leaves 438; b needs 262 + 1000, 824 more. A release unload of a frees
    # its 800 MiB of weights but not its context: not enough, so a is left loaded rather than unloaded for nothing.
    budget = budget_of(1500 * MIB, {"a": 800 * MIB, "b": 1000 * MIB})
    await budget.load("a")
    await budget.unload("a")  # the budget learns a's context
    await budget.load("a")
    with pytest.raises(BudgetExceeded):
        await budget.load("b")
    assert budget.slots["a"].state is SlotState.loaded
    assert ("unload", "a") not in budget.backend.calls[2:]  # type: ignore[attr-defined]


async def test_evicting_a_restart_mode_model_frees_its_context_too() -> None:
    budget = budget_of(1500 * MIB, {"a": 800 * MIB, "b": 1000 * MIB}, restart=frozenset({"a"}))
    await budget.load("a")
    await budget.load("b")  # a's restart unload frees all its 1062 MiB: b fits
    a = budget.slots["a"]
    assert (a.state, a.resident_bytes) == (SlotState.unloaded, 0)
    assert budget.reserved_bytes == CONTEXT_BYTES + 1000 * MIB


async def test_a_poll_takes_the_measured_figures() -> None:
    budget = budget_of(4000 * MIB, {"llm": 1500 * MIB})
    await budget.load("llm")
    await budget.observe("llm", "loaded", device_bytes=CONTEXT_BYTES + 1700 * MIB)  # its KV cache grew
    assert budget.reserved_bytes == CONTEXT_BYTES + 1700 * MIB
    await budget.observe("llm", "unloaded", device_bytes=CONTEXT_BYTES)  # unloaded behind our back
    assert budget.reserved_bytes == CONTEXT_BYTES
    await budget.observe("llm", None)  # the process is gone: the driver freed its context
    assert budget.reserved_bytes == 0


async def test_a_model_with_an_inference_past_its_limit_is_not_evicted() -> None:
    budget = budget_of(1200 * MIB, {"a": 800 * MIB, "b": 100 * MIB})
    await budget.load("a")
    await budget.observe("a", "loaded", device_bytes=CONTEXT_BYTES + 800 * MIB, overdue=1)
    with pytest.raises(BudgetExceeded):
        await budget.load("b")  # the stuck inference still holds a's memory: not freed, not counted twice
    assert budget.slots["a"].state is SlotState.loaded and budget.reserved_bytes == CONTEXT_BYTES + 800 * MIB


def info(name: str, used_on_card: int, process: int, state: ModelState = ModelState.loaded) -> ModelInfo:
    use = DeviceUse(index=0, uuid=UUID, name="card", total_bytes=TOTAL_BYTES, free_bytes=TOTAL_BYTES - used_on_card,
                    process_bytes=process)
    return ModelInfo.model_validate({"name": name, "model_id": name, "state": state, "device": "cuda",
                                     "device_use": use})


async def test_the_card_is_reconciled_with_the_budget() -> None:
    budget = budget_of(5000 * MIB, {"a": 800 * MIB, "b": 400 * MIB})
    await budget.load("a")
    await budget.load("b")
    held = budget.reserved_bytes
    fine = [Reading(info("a", held + DRIVER_BYTES, 0), budget.slots["a"], 1.0),
            Reading(info("b", held + DRIVER_BYTES, 0), budget.slots["b"], 2.0)]
    [check] = reconcile(fine, margin_bytes=256 * MIB)
    assert check.agrees and check.accounted_bytes == held and check.unaccounted_bytes == DRIVER_BYTES
    stale = Reading(info("a", held + DRIVER_BYTES, 0), budget.slots["a"], 1.0)
    fresh = Reading(info("b", held + 1500 * MIB, 0), budget.slots["b"], 2.0)  # a game took 1.4 GiB since
    [check] = reconcile([stale, fresh], margin_bytes=256 * MIB)
    assert not check.agrees and check.unaccounted_bytes == 1500 * MIB
    assert check.message is not None and "does not manage" in check.message


async def test_a_gpu_service_that_has_not_touched_the_card_is_estimated_with_a_context() -> None:
    registry = ServiceRegistry(GatewaySettings(services={"a": "http://127.0.0.1:9", "b": "http://127.0.0.1:10"},
                                               storage_enabled=False))
    try:
        def fresh(device: str) -> ModelInfo:
            return ModelInfo.model_validate({"name": "b", "model_id": "b", "state": "unloaded", "device": device,
                                             "estimated_bytes": 500 * MIB})

        assert registry._estimate(fresh("cuda")) == 500 * MIB  # no context measured anywhere yet
        touched = info("a", CONTEXT_BYTES, CONTEXT_BYTES)
        assert touched.device_use is not None
        touched.device_use.context_bytes = CONTEXT_BYTES
        registry.records["a"].info = touched
        assert registry._estimate(fresh("cuda")) == 500 * MIB + CONTEXT_BYTES  # its first load will make one too
        assert registry._estimate(fresh("cpu")) == 500 * MIB
    finally:
        await registry.lifecycle.close()
