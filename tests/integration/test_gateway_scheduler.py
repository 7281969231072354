"""The gateway's memory budget over HTTP, against real linear-service processes (y = 2x + 1).

Four services: `p` (pinned, 8 MB), and `a`, `b`, `c` (4 MB each); a 17 MB budget holds `p` and
any two of the others. The gateway polls every 0.3 s and gives a request 1.5 s to find room.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServiceProcess
from tests.support.storage_env import shared_redis_url

LINEAR = "tests.support.linear_service:create_app"
GATEWAY = "gateway.app:create_app"
MB = 1_000_000


def linear(name: str, floats: int, logs: Path, port: int | None = None) -> ServiceProcess:
    env = {"LINEAR_NAME": name, "LINEAR_BALLAST_FLOATS": str(floats), "LINEAR_MODEL_PATH": str(logs),
           "LINEAR_LOAD_DELAY_S": "0.2"}
    return ServiceProcess(LINEAR, env, logs / f"{name}.log", port=port)


def gateway_env(services: dict[str, ServiceProcess], budget: int, **extra: str) -> dict[str, str]:
    registry = {name: {"url": proc.url, "kind": "linear"} for name, proc in services.items()}
    # the budget ledger on the test Redis, in a namespace of this gateway's own (MEDIAMESH_QUEUE:ledger)
    return {"GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": json.dumps(registry),
            "REDIS_URL": shared_redis_url(), "MEDIAMESH_QUEUE": f"test:{uuid.uuid4().hex[:10]}",
            "GATEWAY_BUDGET_BYTES": str(budget),
            "GATEWAY_HEADROOM_BYTES": "0", "GATEWAY_POLL_INTERVAL_S": "0.3", "GATEWAY_ROOM_TIMEOUT_S": "1.5",
            "GATEWAY_RETRY_AFTER_S": "7", **extra}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    logs = tmp_path_factory.mktemp("scheduler")
    services = {"p": linear("p", 2 * MB, logs)} | {n: linear(n, MB, logs) for n in "abc"}
    started: list[ServiceProcess] = []
    try:
        for proc in services.values():
            started.append(proc.start())
        env = gateway_env(services, 17 * MB, GATEWAY_PINNED='["p"]', GATEWAY_PRIORITIES='{"c": 5}')
        gateway = ServiceProcess(GATEWAY, env, logs / "gateway.log")
        started.append(gateway.start())
        mesh = {"gateway": gateway, **services}
        yield mesh  # tests may replace a process (a restart): stop whatever is there at the end
        started.extend(mesh.values())
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def gw(mesh: dict[str, ServiceProcess]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh["gateway"].url, timeout=30) as client:
        for name in "abc":
            client.post(f"/v1/models/{name}/unload")
        wait_until(lambda: states(client)["p"] == "loaded")
        yield client


def states(client: httpx.Client) -> dict[str, str]:
    return {m["id"]: m["state"] for m in client.get("/v1/models").json()["data"]}


def wait_until(check: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def predict(client: httpx.Client, name: str, x: float, hold_s: float = 0.0, **headers: str) -> httpx.Response:
    return client.post(f"/v1/services/{name}/v1/predict", json={"x": x, "hold_s": hold_s}, headers=headers)


def model(client: httpx.Client, name: str) -> dict[str, object]:
    return next(m for m in client.get("/v1/models").json()["data"] if m["id"] == name)


def test_loads_on_demand_and_reports_measured_footprint(gw: httpx.Client, mesh: dict[str, ServiceProcess]) -> None:
    assert states(gw)["a"] == "unloaded"
    answer = predict(gw, "a", 4)
    assert answer.status_code == 200 and answer.json() == {"y": 9.0}
    report = gw.get("/v1/models").json()
    a = next(m for m in report["data"] if m["id"] == "a")
    assert a["state"] == "loaded" and a["footprint_bytes"] >= 4 * MB and a["reserved_bytes"] == a["footprint_bytes"]
    assert a["in_flight"] == 0 and a["expires_at"] is not None
    assert report["reserved_bytes"] <= report["budget_bytes"] == 17 * MB
    assert httpx.get(mesh["a"].url + "/v1/model").json()["state"] == "loaded"


def test_evicts_least_recently_used_and_never_the_pinned(gw: httpx.Client, mesh: dict[str, ServiceProcess]) -> None:
    predict(gw, "a", 1)
    predict(gw, "b", 1)
    predict(gw, "a", 1)  # b is now the least recently used of the unpinned
    assert predict(gw, "c", 1).json() == {"y": 3.0}
    assert states(gw) == {"p": "loaded", "a": "loaded", "b": "unloaded", "c": "loaded"}
    assert httpx.get(mesh["b"].url + "/v1/model").json()["state"] == "unloaded"
    # c has the higher priority: loading b now evicts a (priority 0), although c was used last
    predict(gw, "b", 1)
    assert states(gw) == {"p": "loaded", "a": "unloaded", "b": "loaded", "c": "loaded"}


def test_in_flight_requests_are_never_cut_and_a_request_without_room_gets_503(gw: httpx.Client) -> None:
    with ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(predict, gw, name, 2, 3.0) for name in "ab"]
        wait_until(lambda: all(m["in_flight"] == 1 for m in gw.get("/v1/models").json()["data"]
                               if m["id"] in "ab"))
        started = time.monotonic()
        refused = predict(gw, "c", 1)
        waited = time.monotonic() - started
        assert [f.result().json() for f in slow] == [{"y": 5.0}, {"y": 5.0}]
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "7"
    detail = refused.json()["detail"]
    assert "no room for model 'c'" in detail
    assert "a (" in detail and "b (" in detail and "1 in flight" in detail and "p (" in detail and "pinned" in detail
    assert 1.2 < waited < 2.9  # waited for room (room timeout 1.5 s), then gave up before the holders finished
    assert states(gw)["c"] == "unloaded"
    assert predict(gw, "c", 1).json() == {"y": 3.0}  # once a and b are idle, c gets their memory


def test_waiting_and_in_flight_requests_are_shown_per_model(gw: httpx.Client) -> None:
    with ThreadPoolExecutor(3) as pool:
        slow = [pool.submit(predict, gw, name, 2, 2.5) for name in "ab"]
        wait_until(lambda: model(gw, "a")["in_flight"] == model(gw, "b")["in_flight"] == 1)
        waiting = pool.submit(predict, gw, "c", 1)  # no room while a and b are busy: it waits for memory
        wait_until(lambda: model(gw, "c")["waiting"] == 1)
        c = model(gw, "c")
        assert c["state"] == "unloaded" and c["in_flight"] == 0
        assert model(gw, "a")["waiting"] == 0
        assert waiting.result().status_code == 503 and [f.result().json() for f in slow] == [{"y": 5.0}] * 2
    assert model(gw, "c")["waiting"] == 0 and model(gw, "a")["in_flight"] == 0


def test_keep_alive_zero_unloads_right_after_and_minus_one_keeps_it(
    gw: httpx.Client, mesh: dict[str, ServiceProcess]
) -> None:
    assert predict(gw, "a", 4, **{"X-Keep-Alive": "0"}).json() == {"y": 9.0}
    wait_until(lambda: states(gw)["a"] == "unloaded", timeout_s=1.0)  # well before the next poll's TTL check
    assert httpx.get(mesh["a"].url + "/v1/model").json()["state"] == "unloaded"
    assert predict(gw, "b", 1, **{"X-Keep-Alive": "-1"}).status_code == 200
    b = model(gw, "b")
    assert b["state"] == "loaded" and b["keep_alive"] == -1 and b["expires_at"] is None
    assert predict(gw, "b", 1).status_code == 200 and model(gw, "b")["expires_at"] is not None  # back to the TTL
    refused = predict(gw, "b", 1, **{"X-Keep-Alive": "soon"})
    assert refused.status_code == 422 and "X-Keep-Alive" in refused.json()["detail"]


def test_concurrent_requests_keep_the_budget(gw: httpx.Client) -> None:
    peak = 0

    def watch() -> None:
        nonlocal peak
        for _ in range(40):
            report = gw.get("/v1/models").json()
            peak = max(peak, report["reserved_bytes"])
            time.sleep(0.02)

    with ThreadPoolExecutor(10) as pool:
        watcher = pool.submit(watch)
        answers = list(pool.map(lambda i: predict(gw, "abc"[i % 3], i), range(18)))
        watcher.result()
    ok = [r for r in answers if r.status_code == 200]
    assert all(r.json()["y"] == 2 * i + 1 for i, r in enumerate(answers) if r.status_code == 200)
    assert all(r.status_code in (200, 503) for r in answers) and len(ok) >= 6
    assert 0 < peak <= 17 * MB


def test_a_client_that_gives_up_does_not_keep_the_model_busy(gw: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        gw.post("/v1/services/a/v1/predict", json={"x": 1, "hold_s": 1.0}, timeout=0.3)
    wait_until(lambda: all(m["in_flight"] == 0 for m in gw.get("/v1/models").json()["data"]), timeout_s=5)
    assert gw.post("/v1/models/a/unload").json()["state"] == "unloaded"


def test_manual_load_and_unload(gw: httpx.Client) -> None:
    loaded = gw.post("/v1/models/b/load")
    assert loaded.status_code == 200 and loaded.json()["state"] == "loaded"
    unloaded = gw.post("/v1/models/b/unload").json()
    assert "state" in unloaded, unloaded
    assert unloaded["state"] == "unloaded" and unloaded["reserved_bytes"] == 0
    missing = gw.post("/v1/models/nope/load")
    assert missing.status_code == 404 and "known services: a, b, c, p" in missing.json()["detail"]


def test_a_restarted_pinned_model_is_loaded_again(gw: httpx.Client, mesh: dict[str, ServiceProcess],
                                                  tmp_path: Path) -> None:
    pinned = mesh["p"]
    pinned.kill()
    wait_until(lambda: states(gw)["p"] == "down")
    mesh["p"] = linear("p", 2 * MB, tmp_path, port=pinned.port).start()
    wait_until(lambda: states(gw)["p"] == "loaded")
    assert httpx.get(mesh["p"].url + "/v1/model").json()["state"] == "loaded"


def test_killed_service_is_detected_and_a_restarted_one_resynchronised(tmp_path: Path) -> None:
    service = linear("k", MB, tmp_path).start()
    gateway = ServiceProcess(GATEWAY, gateway_env({"k": service}, 10 * MB), tmp_path / "gateway.log").start()
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as gw:
            assert predict(gw, "k", 1).json() == {"y": 3.0}
            service.kill()
            wait_until(lambda: gw.get("/v1/health").json()["services"][0]["status"] == "down")
            health = gw.get("/v1/health")
            assert health.status_code == 503 and health.json()["status"] == "down"
            assert states(gw)["k"] == "down"
            down = predict(gw, "k", 1)
            assert down.status_code in (502, 503) and "'k'" in down.json()["detail"]

            service = linear("k", MB, tmp_path, port=service.port).start()
            wait_until(lambda: states(gw)["k"] == "unloaded")
            assert gw.get("/v1/health").json()["status"] == "ok"
            assert predict(gw, "k", 4).json() == {"y": 9.0}  # loads again on demand
            assert states(gw)["k"] == "loaded"
    finally:
        gateway.stop()
        service.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """`short` has its own 0.5 s idle TTL; `busy` takes 0.6 s per batch of one and queues at most one."""
    logs = tmp_path_factory.mktemp("pair")
    short = linear("short", MB, logs)
    busy = ServiceProcess(LINEAR, {"LINEAR_NAME": "busy", "LINEAR_BALLAST_FLOATS": str(MB),
                                   "LINEAR_MODEL_PATH": str(logs), "LINEAR_MAX_BATCH_SIZE": "1",
                                   "LINEAR_MAX_QUEUE": "1", "LINEAR_PREDICT_DELAY_S": "0.6"}, logs / "busy.log")
    started = [short.start(), busy.start()]
    try:
        env = gateway_env({"short": short, "busy": busy}, 50 * MB, GATEWAY_IDLE_TTL_S="60",
                          GATEWAY_IDLE_TTL_BY_MODEL='{"short": 0.5}')
        started.append(ServiceProcess(GATEWAY, env, logs / "gateway.log").start())
        with httpx.Client(base_url=started[-1].url, timeout=30) as client:
            yield client
    finally:
        for proc in started:
            proc.stop()


def test_a_per_model_ttl_unloads_that_model_and_not_another(pair: httpx.Client) -> None:
    assert predict(pair, "short", 1).status_code == predict(pair, "busy", 1).status_code == 200
    wait_until(lambda: states(pair)["short"] == "unloaded", timeout_s=3.0)
    assert states(pair)["busy"] == "loaded" and model(pair, "busy")["expires_at"] is not None


def test_a_full_batch_queue_answers_503_with_retry_after(pair: httpx.Client) -> None:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: predict(pair, "busy", i), range(4)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 200, 503, 503], codes  # one batch running, one queued, the rest refused
    for refused in (r for r in answers if r.status_code == 503):
        assert refused.headers["Retry-After"] == "1" and "at most 1" in refused.json()["detail"]
    assert all(r.json() == {"y": 2 * i + 1} for i, r in enumerate(answers) if r.status_code == 200)
    assert predict(pair, "busy", 4).json() == {"y": 9.0}  # and served again once the queue drains
