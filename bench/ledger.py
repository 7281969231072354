"""`python -m bench ledger`: what a reservation costs through the budget ledger in Redis vs in the process.

The ledger (`gateway.scheduler.ledger`) runs one Lua script per operation on one device's hash;
before it, the gateway kept the same records in a dict. The baseline here is that: the same
checks (sum the device, compare with the budget, write the record) on a dict in this process.
Measured, each operation timed alone, on a device already holding nine other models:

* a reservation: `reserve` (granted) and its release (`unloaded`), the load path;
* a request: `begin_use` + `end_use`, what every request through the gateway now pays;
* three gateways reserving at once (three clients, one device), for contention.

Through the machine's Redis over TCP (REDIS_URL, else 127.0.0.1:6379) and through the embedded
Redis on a unix socket (what a lone gateway uses when REDIS_URL is unset). Target: a reservation
adds under 1 ms at p50.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from bench.report import write_section
from gateway.scheduler.ledger import RedisLedger
from shared.embedded import EmbeddedRedis

ROUNDS = 2000
WARMUP = 200
CONCURRENT_ROUNDS = 500
OTHERS = 9  # models already reserved on the device
BUDGET = 10**12
DEVICE = "bench/GPU-0"


@dataclass
class InProcessLedger:
    """The baseline: the ledger's records and checks in a dict, as the budget kept them in its process."""

    records: dict[str, dict[str, object]] = field(default_factory=dict)

    async def reserve(self, model: str, nbytes: int) -> str:
        total = sum(int(r["b"]) for r in self.records.values())  # type: ignore[call-overload]
        if model in self.records:
            return "joined"
        if total + nbytes > BUDGET:
            return "full"
        self.records[model] = {"b": nbytes, "s": "loading", "h": {"me": time.time() + 30}, "f": {}}
        return "granted"

    async def unloaded(self, model: str) -> None:
        self.records.pop(model, None)

    async def begin_use(self, model: str) -> None:
        record = self.records[model]
        in_flight: dict[str, int] = record["f"]  # type: ignore[assignment]
        in_flight["me"] = in_flight.get("me", 0) + 1

    async def end_use(self, model: str) -> None:
        in_flight: dict[str, int] = self.records[model]["f"]  # type: ignore[assignment]
        in_flight["me"] -= 1


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


async def measure_in_process() -> dict[str, list[float]]:
    ledger = InProcessLedger()
    for i in range(OTHERS):
        await ledger.reserve(f"other{i}", 10**6)
    times: dict[str, list[float]] = {"reserve": [], "release": [], "request": []}
    for i in range(WARMUP + ROUNDS):
        reserve = await timed(lambda: ledger.reserve("m", 10**6))
        request = await timed(lambda: ledger.begin_use("m")) + await timed(lambda: ledger.end_use("m"))
        release = await timed(lambda: ledger.unloaded("m"))
        if i >= WARMUP:
            times["reserve"].append(reserve)
            times["request"].append(request)
            times["release"].append(release)
    return times


async def measure_redis(url: str) -> dict[str, list[float]]:
    namespace = f"bench:{uuid.uuid4().hex[:8]}:ledger"
    ledger = RedisLedger(namespace, owner="bench", url=url)
    try:
        for i in range(OTHERS):
            await ledger.reserve(DEVICE, f"other{i}", 10**6, BUDGET)
        times: dict[str, list[float]] = {"reserve": [], "release": [], "request": []}
        for i in range(WARMUP + ROUNDS):
            reserve = await timed(lambda: ledger.reserve(DEVICE, "m", 10**6, BUDGET))
            await ledger.mark_loaded(DEVICE, "m")
            request = (await timed(lambda: ledger.begin_use(DEVICE, "m"))
                       + await timed(lambda: ledger.end_use(DEVICE, "m")))
            release = await timed(lambda: ledger.unloaded(DEVICE, "m"))
            if i >= WARMUP:
                times["reserve"].append(reserve)
                times["request"].append(request)
                times["release"].append(release)
        times["3 gateways reserving at once"] = await measure_contention(url, namespace)
        for i in range(OTHERS):
            await ledger.unloaded(DEVICE, f"other{i}")
        return times
    finally:
        await ledger.close()


async def measure_contention(url: str, namespace: str) -> list[float]:
    gateways = [RedisLedger(namespace, owner=f"g{i}", url=url) for i in range(3)]

    async def one(ledger: RedisLedger, model: str) -> list[float]:
        found = []
        for _ in range(CONCURRENT_ROUNDS):
            found.append(await timed(lambda: ledger.reserve(DEVICE, model, 10**6, BUDGET)))
            await ledger.unloaded(DEVICE, model)
        return found

    try:
        runs = await asyncio.gather(*(one(g, f"c{i}") for i, g in enumerate(gateways)))
        return [t for run in runs for t in run]
    finally:
        for ledger in gateways:
            await ledger.close()


def tcp_redis_url() -> str | None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return None
    return url if url.startswith("redis://") else None


def main() -> None:
    results: dict[str, dict[str, list[float]]] = {"in-process (baseline)": asyncio.run(measure_in_process())}
    url = tcp_redis_url()
    if url is not None:
        results["Redis over TCP (127.0.0.1)"] = asyncio.run(measure_redis(url))
    with tempfile.TemporaryDirectory() as tmp:
        embedded = EmbeddedRedis(Path(tmp) / "redis.db")
        try:
            results["embedded Redis (unix socket)"] = asyncio.run(measure_redis(embedded.start()))
        finally:
            embedded.stop(force=True)
    report(results)


def report(results: dict[str, dict[str, list[float]]]) -> None:
    base = results["in-process (baseline)"]
    base_reserve = statistics.median(base["reserve"])
    rows, lines, added = [], [], []
    for name, times in results.items():
        for op, values in times.items():
            p50 = statistics.median(values)
            baseline = statistics.median(base.get(op, base["reserve"]))
            ratio = p50 / baseline if baseline else float("inf")
            rows.append(f"| {name} | {op} | {p50 * 1000:.1f} | {pct(values, 99) * 1000:.1f} | "
                        f"{(p50 - baseline) * 1000:+.1f} | {ratio:,.0f}× |")
            lines.append(f"{name} {op}: p50 {p50 * 1000:.1f} µs, p99 {pct(values, 99) * 1000:.1f} µs, ×{ratio:,.0f}")
            if op == "reserve" and name != "in-process (baseline)":
                added.append((name, p50 - base_reserve))
    print("\n".join(lines))
    worst_name, worst = max(added, key=lambda a: a[1])
    verdict = "meets" if worst < 1.0 else "misses"
    load = psutil.getloadavg()[0]
    write_section("ledger", f"""
## Budget ledger: a reservation through Redis vs in-process

One device already holding {OTHERS} reservations; {ROUNDS} rounds (after {WARMUP} warm-up) of: reserve a
model, mark it loaded, one request (`begin_use` + `end_use`), release it; each operation timed alone from
asyncio. Then three ledgers (three gateways) reserve and release on the same device at once,
{CONCURRENT_ROUNDS} rounds each. The baseline is the same records and checks on a dict in this process (how
the budget kept them before the ledger). Times in µs; ratio = p50 / baseline p50 (for the concurrent row,
against the baseline's reserve). Load average {load:.1f} on {psutil.cpu_count()} cores while it ran: other
work shares this machine, so the absolute figures are noisy.

| ledger | operation | p50 µs | p99 µs | p50 added | ratio |
|---|---|---|---|---|---|
{chr(10).join(rows)}

A reservation adds **{worst * 1000:.0f} µs** at p50 at worst ({worst_name}): it {verdict} the target (under
1 ms at p50). A request through the gateway pays `begin_use` + `end_use`, two round trips; a model load
(seconds) pays the reserve and the release. The three "gateways" of the concurrent row are three clients
in this one process, sharing its event loop (and two cores with everything else), so each waits for the
others' turns as well as for Redis: an upper bound for three gateway processes.
""")


if __name__ == "__main__":
    main()
