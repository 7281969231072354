"""Several gateway processes over the same services share one budget through the ledger in Redis.

Four linear services (`a`-`d`, 4 MB each) on one device whose budget (10 MB) holds any two. The
gateways poll every 0.3 s and renew their leases every 0.5 s (1.5 s leases); the ledger is
sampled straight from Redis all along.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.ledger import fresh_ledger, holders, ledger_totals
from tests.support.processes import ServiceProcess, free_port
from tests.support.storage_env import shared_redis_url

LINEAR = "tests.support.linear_service:create_app"
GATEWAY = "gateway.app:create_app"
MB = 1_000_000
BUDGET = 10 * MB
LEASE_TTL_S = 1.5


def linear(name: str, logs: Path, load_delay_s: float = 0.05, node: str = "node1") -> ServiceProcess:
    env = {"LINEAR_NAME": name, "LINEAR_BALLAST_FLOATS": str(MB), "LINEAR_MODEL_PATH": str(logs),
           "LINEAR_LOAD_DELAY_S": str(load_delay_s), "LINEAR_MAX_QUEUE": "64", "MEDIAMESH_NODE": node}
    return ServiceProcess(LINEAR, env, logs / f"{name}.log")


def gateway(services: dict[str, ServiceProcess], redis_url: str, queue: str, log: Path, **extra: str) -> ServiceProcess:
    registry = {name: {"url": proc.url, "kind": "linear"} for name, proc in services.items()}
    env = {"GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": json.dumps(registry), "REDIS_URL": redis_url,
           "MEDIAMESH_QUEUE": queue, "GATEWAY_BUDGET_BYTES": str(BUDGET), "GATEWAY_HEADROOM_BYTES": "0",
           "GATEWAY_POLL_INTERVAL_S": "0.3", "GATEWAY_ROOM_TIMEOUT_S": "4", "GATEWAY_LEASE_TTL_S": str(LEASE_TTL_S),
           **extra}
    return ServiceProcess(GATEWAY, env, log)


def predict(url: str, name: str, x: float, hold_s: float = 0.0, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/services/{name}/v1/predict", json={"x": x, "hold_s": hold_s}, headers=headers,
                      timeout=30)


def wait_until(check: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class Sampler(threading.Thread):
    """Reads every device's reserved bytes from Redis until stopped; remembers the peak."""

    def __init__(self, url: str, namespace: str) -> None:
        super().__init__(daemon=True)
        self.url, self.namespace = url, namespace
        self.peak, self.samples, self.over = 0, 0, []  # type: ignore[var-annotated]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for device, reserved in ledger_totals(self.url, self.namespace).items():
                self.peak = max(self.peak, reserved)
                if reserved > BUDGET:
                    self.over.append((device, reserved))
            self.samples += 1


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    logs = tmp_path_factory.mktemp("ledger")
    started = {name: linear(name, logs) for name in "abcd"}
    try:
        for proc in started.values():
            proc.start()
        yield started
    finally:
        for proc in started.values():
            proc.stop()


def unload_everything(services: dict[str, ServiceProcess]) -> None:
    for proc in services.values():
        httpx.post(proc.url + "/v1/model/unload", timeout=30)


@pytest.mark.parametrize("count", [2, 3])
def test_gateways_under_random_load_never_pass_the_device_budget(
    count: int, services: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    unload_everything(services)
    url, queue = shared_redis_url(), f"test:{uuid.uuid4().hex[:10]}"
    gateways = [gateway(services, url, queue, tmp_path / f"gateway{i}.log") for i in range(count)]
    sampler = Sampler(url, f"{queue}:ledger")
    dead: set[int] = set()
    try:
        for proc in gateways:
            proc.start()
        sampler.start()
        rng = random.Random(count)
        plan = [(rng.randrange(count), rng.choice("abcd"), i, rng.choice([0.0, 0.02, 0.1]),
                 rng.choice([None, None, "0"])) for i in range(60)]

        def send(step: tuple[int, str, int, float, str | None]) -> tuple[int, httpx.Response | None]:
            index, name, x, hold_s, keep_alive = step
            alive = [i for i in range(count) if i not in dead]
            target = index if index in alive else alive[index % len(alive)]
            headers = {"X-Keep-Alive": keep_alive} if keep_alive is not None else {}
            try:
                return x, predict(gateways[target].url, name, x, hold_s, **headers)
            except httpx.TransportError:  # sent to the gateway killed meanwhile
                assert target in dead
                return x, None

        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(send, plan[:30]))
            if count == 3:  # one gateway dies mid-load: its leases must lapse, the others go on
                killed = gateways[2]
                running = pool.submit(send, (2, "a", 999, 0.5, None))
                time.sleep(0.2)
                dead.add(2)
                killed.kill(signal.SIGKILL)
                running.result()
            rest = list(pool.map(send, plan[30:]))
        answers = [(x, r) for x, r in first + rest if r is not None]
        assert all(r.status_code in (200, 503) for _, r in answers), [r.text for _, r in answers]
        ok = [(x, r) for x, r in answers if r.status_code == 200]
        assert all(r.json() == {"y": 2 * x + 1} for x, r in ok)
        assert len(ok) >= len(answers) // 2, [r.json() for _, r in answers if r.status_code != 200]
        assert all("Retry-After" in r.headers for _, r in answers if r.status_code == 503)
        if dead:
            killed_pid = f":{gateways[2].proc.pid}:"  # type: ignore[union-attr]
            wait_until(lambda: not any(killed_pid in h for h in holders(url, f"{queue}:ledger")),
                       timeout_s=LEASE_TTL_S * 4)
    finally:
        sampler.done.set()
        sampler.join(timeout=10)
        for proc in gateways:
            proc.stop()
    assert sampler.samples > 20 and 0 < sampler.peak <= BUDGET and not sampler.over, (sampler.samples, sampler.over)


def test_a_model_in_use_through_one_gateway_is_not_evicted_by_another(
    services: dict[str, ServiceProcess], tmp_path: Path
) -> None:
    unload_everything(services)
    url, queue = shared_redis_url(), f"test:{uuid.uuid4().hex[:10]}"
    first, second = (gateway(services, url, queue, tmp_path / f"{n}.log").start() for n in ("first", "second"))
    try:
        assert predict(first.url, "a", 1).status_code == 200
        loads = httpx.get(services["a"].url + "/v1/model").json()["loads"]
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(predict, first.url, "a", 2, 3.0)  # a stays in flight through the first gateway
            wait_until(lambda: _in_flight(url, f"{queue}:ledger", "a") == 1)
            assert predict(first.url, "b", 1).status_code == 200  # b is now more recently used than a
            # the second gateway needs room for c: least recently used is a, but a is in flight elsewhere
            assert predict(second.url, "c", 3).json() == {"y": 7.0}
            states = {n: httpx.get(p.url + "/v1/model").json()["state"] for n, p in services.items()}
            assert states == {"a": "loaded", "b": "unloaded", "c": "loaded", "d": "unloaded"}
            assert slow.result().json() == {"y": 5.0}
        assert httpx.get(services["a"].url + "/v1/model").json()["loads"] == loads  # never unloaded under it
    finally:
        first.stop()
        second.stop()


def _in_flight(url: str, namespace: str, model: str) -> int:
    async def read() -> int:
        ledger = fresh_ledger(namespace, url=url)
        try:
            views = [await ledger.view(device) for device in await ledger.devices()]
        finally:
            await ledger.close()
        return sum(v.holdings[model].in_flight for v in views if model in v.holdings)

    return asyncio.run(read())


def test_each_device_has_its_own_budget(tmp_path: Path) -> None:
    """a, b on node1 (10 MB: both fit), c, d on node2 (its own budget of 5 MB: one at a time)."""
    nodes = {"a": "node1", "b": "node1", "c": "node2", "d": "node2"}
    services = {name: linear(name, tmp_path, node=node) for name, node in nodes.items()}
    gw: ServiceProcess | None = None
    try:
        for proc in services.values():
            proc.start()
        gw = gateway(services, shared_redis_url(), f"test:{uuid.uuid4().hex[:10]}", tmp_path / "gateway.log",
                     GATEWAY_DEVICE_BUDGETS=json.dumps({"node2/cpu": 5 * MB})).start()
        for name, x in zip("abcd", range(4), strict=True):
            assert predict(gw.url, name, x).json() == {"y": 2 * x + 1}
        report = httpx.get(gw.url + "/v1/models").json()
        assert {m["id"]: (m["device"], m["state"]) for m in report["data"]} == {
            "a": ("node1/cpu", "loaded"), "b": ("node1/cpu", "loaded"),  # node2's loads evicted nothing here
            "c": ("node2/cpu", "unloaded"), "d": ("node2/cpu", "loaded")}
        budgets = {b["device"]: (b["budget_bytes"], b["reserved_bytes"] // MB) for b in report["budgets"]}
        assert budgets == {"node1/cpu": (BUDGET, 8), "node2/cpu": (5 * MB, 4)}
        assert report["budget_bytes"] == BUDGET + 5 * MB
    finally:
        for proc in (gw, *services.values()):
            if proc is not None:
                proc.stop()


def test_a_gateway_killed_mid_load_leaves_no_reservation_once_its_lease_lapses(tmp_path: Path) -> None:
    slow = linear("slow", tmp_path, load_delay_s=3.0).start()
    url, queue = shared_redis_url(), f"test:{uuid.uuid4().hex[:10]}"
    namespace = f"{queue}:ledger"
    first = gateway({"slow": slow}, url, queue, tmp_path / "first.log").start()
    second: ServiceProcess | None = None
    try:
        with ThreadPoolExecutor(1) as pool:
            loading = pool.submit(lambda: predict(first.url, "slow", 1))
            wait_until(lambda: sum(ledger_totals(url, namespace).values()) > 0)  # reserved, now loading
            assert httpx.get(slow.url + "/v1/model").json()["state"] == "loading"
            first.kill(signal.SIGKILL)
            with pytest.raises(httpx.TransportError):
                loading.result()
        wait_until(lambda: ledger_totals(url, namespace) == {} or sum(ledger_totals(url, namespace).values()) == 0,
                   timeout_s=LEASE_TTL_S * 4)
        assert holders(url, namespace) == set()
        # the service finished loading meanwhile: the next gateway finds it loaded and counts it again
        wait_until(lambda: httpx.get(slow.url + "/v1/model").json()["state"] == "loaded")
        second = gateway({"slow": slow}, url, queue, tmp_path / "second.log").start()
        wait_until(lambda: sum(ledger_totals(url, namespace).values()) >= 4 * MB)
        assert predict(second.url, "slow", 4).json() == {"y": 9.0}
    finally:
        for proc in (first, second, slow):
            if proc is not None:
                proc.stop()


class RedisServer:
    """A redis-server of the test's own, append-only with an fsync per write, that can be killed and restarted."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"],
            stdout=(self.folder / "redis.log").open("ab"), stderr=subprocess.STDOUT)
        wait_until(self._answers, timeout_s=10)
        return self

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_a_redis_restart_loses_no_granted_lease(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    service = linear("a", tmp_path).start()
    queue = f"test:{uuid.uuid4().hex[:10]}"
    namespace = f"{queue}:ledger"
    gw = gateway({"a": service}, server.url, queue, tmp_path / "gateway.log", GATEWAY_LEASE_TTL_S="60")
    try:
        gw.start()
        assert predict(gw.url, "a", 1).json() == {"y": 3.0}
        other = fresh_ledger(namespace, owner="other-gateway", lease_ttl_s=60, url=server.url)

        async def grant_then_view() -> object:
            granted = await other.reserve("elsewhere/cpu", "b", 3 * MB, BUDGET)
            assert granted.status == "granted"
            try:
                return [await other.view(d) for d in await other.devices()]
            finally:
                await other.close()

        before = asyncio.run(grant_then_view())
        server.kill()  # at once after the grant: only what reached the append-only file survives
        server.start()
        after = asyncio.run(_views(server.url, namespace))
        assert _holdings(after) == _holdings(before) and len(_holdings(after)) == 2
        # the gateway reconnects (a request that meets a dead connection gets 503 + Retry-After); its
        # reservation is there, so the model serves without a new load
        wait_until(lambda: predict(gw.url, "a", 2).status_code == 200, timeout_s=10)
        assert predict(gw.url, "a", 2).json() == {"y": 5.0}
        assert httpx.get(service.url + "/v1/model").json()["loads"] == 1
        assert ledger_totals(server.url, namespace)["elsewhere/cpu"] == 3 * MB
    finally:
        gw.stop()
        service.stop()
        server.kill()


async def _views(url: str, namespace: str) -> list[object]:
    ledger = fresh_ledger(namespace, owner="reader", url=url)
    try:
        return [await ledger.view(d) for d in await ledger.devices()]
    finally:
        await ledger.close()


def _holdings(views: object) -> dict[tuple[str, str], tuple[int, str, tuple[str, ...]]]:
    return {(v.device, h.model): (h.bytes, h.state, h.holders)  # type: ignore[attr-defined]
            for v in views for h in v.holdings.values()}  # type: ignore[attr-defined]
