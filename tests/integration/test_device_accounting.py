"""The budget counts what the GPU really holds, and a restart-mode unload really frees it.

Real processes: two linear services supervised by the launcher's own `Supervisor`, and a
gateway. The GPU is the fake card of `tests/support/fake_nvml.py` (pynvml's signatures, a
shared file for a card): each service's first load creates a "CUDA context" there that only
its process's exit gives back. `k` unloads by releasing its weights; `r` unloads by restarting.
`k` also has a 0.5 s inference limit, for the watchdog.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from mediamesh.launcher.children import ChildProcess
from mediamesh.launcher.plan import MeshPlan, ProcessSpec
from mediamesh.launcher.supervisor import Supervisor
from shared.config import RESTART_EXIT_CODE
from tests.support.fake_nvml import CONTEXT_BYTES, FakeCard
from tests.support.processes import REPO, ServiceProcess, free_port

LINEAR = "tests.support.linear_service:create_app"
GATEWAY = "gateway.app:create_app"
MIB = 1024 * 1024


def service_spec(name: str, card: Path, folder: Path, **env: str) -> ProcessSpec:
    port = free_port()
    argv = [sys.executable, "-m", "tests.support.fake_nvml", str(card), "--", "uvicorn", "--factory", LINEAR,
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    env = {"LINEAR_NAME": name, "LINEAR_MODEL_PATH": str(folder), "LINEAR_BALLAST_FLOATS": "1000000",
           "HF_HUB_OFFLINE": "1", **env}
    return ProcessSpec(name, argv, env, port, "/health")


class Mesh:
    def __init__(self, supervisor: Supervisor, gateway: ServiceProcess, card: FakeCard) -> None:
        self.supervisor, self.gateway, self.card = supervisor, gateway, card
        self.http = httpx.Client(timeout=30)

    def child(self, name: str) -> ChildProcess:
        return next(c for c in self.supervisor.children if c.name == name)

    def service(self, name: str, path: str) -> Any:
        return self.http.get(f"{self.child(name).spec.base_url('127.0.0.1')}{path}").json()

    def gw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.gateway.url + path, **kwargs)

    def model(self, name: str) -> dict[str, Any]:
        return next(m for m in self.gw("GET", "/v1/models").json()["data"] if m["id"] == name)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("device")
    card_path = folder / "card.json"
    card = FakeCard(card_path)
    plan = MeshPlan([service_spec("k", card_path, folder, LINEAR_INFERENCE_LIMIT_S="0.5"),
                     service_spec("r", card_path, folder, LINEAR_UNLOAD_MODE="restart")])
    stop = threading.Event()
    supervisor = Supervisor(plan, host="127.0.0.1", log_dir=folder, env=dict(__import__("os").environ), cwd=REPO,
                            console=Console(file=io.StringIO()), should_stop=stop.is_set)
    supervisor.start_all()
    thread = threading.Thread(target=supervisor.supervise, kwargs={"poll_s": 0.1}, daemon=True)
    gateway: ServiceProcess | None = None
    try:
        assert supervisor.wait_until_up(60), [c.log_tail() for c in supervisor.children]
        thread.start()
        registry = {c.name: {"url": c.spec.base_url("127.0.0.1"), "kind": "linear"} for c in supervisor.children}
        gateway = ServiceProcess(GATEWAY, {
            "GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": json.dumps(registry),
            "GATEWAY_BUDGET_BYTES": str(2 * 1024 * MIB), "GATEWAY_HEADROOM_BYTES": "0",
            "GATEWAY_POLL_INTERVAL_S": "0.2", "GATEWAY_LOAD_TIMEOUT_S": "60",
        }, folder / "gateway.log").start()
        yield Mesh(supervisor, gateway, card)
    finally:
        if gateway is not None:
            gateway.stop()
        stop.set()
        thread.join(timeout=5) if thread.is_alive() else None
        supervisor.stop()


def wait_until(check: Any, timeout_s: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_loaded_model_reserves_what_its_process_holds_on_the_card(mesh: Mesh) -> None:
    assert mesh.gw("POST", "/v1/models/k/load").status_code == 200
    use = mesh.service("k", "/v1/model")["device_use"]
    # NVML's figure: the context and the libraries beside torch on top of the weights the allocator knows
    assert use["process_bytes"] == use["context_bytes"] + use["allocator_bytes"] + use["other_bytes"]
    assert use["context_bytes"] == CONTEXT_BYTES
    wait_until(lambda: mesh.model("k")["reserved_bytes"] == mesh.service("k", "/v1/model")["device_use"][
        "process_bytes"])
    assert mesh.model("k")["reserved_bytes"] > mesh.service("k", "/v1/model")["memory_bytes"] + CONTEXT_BYTES


def test_a_released_model_still_counts_its_cuda_context(mesh: Mesh) -> None:
    mesh.gw("POST", "/v1/models/k/load")
    loaded = mesh.service("k", "/v1/model")["device_use"]["process_bytes"]
    assert mesh.gw("POST", "/v1/models/k/unload").json()["state"] == "unloaded"
    k = mesh.model("k")
    assert (k["reserved_bytes"], k["resident_bytes"]) == (0, CONTEXT_BYTES)
    assert k["freed_bytes"] == loaded - CONTEXT_BYTES  # the weights and the libraries' share, not the context
    report = mesh.gw("GET", "/v1/models").json()
    assert report["reserved_bytes"] >= CONTEXT_BYTES  # the budget counts the context of a process not loaded
    assert mesh.service("k", "/v1/model")["device_use"]["process_bytes"] == CONTEXT_BYTES


def test_a_restart_unload_ends_the_process_and_frees_everything(mesh: Mesh) -> None:
    assert mesh.gw("POST", "/v1/models/r/load").status_code == 200
    before = mesh.service("r", "/v1/model")
    assert before["device_use"]["process_bytes"] > CONTEXT_BYTES
    assert before["pid"] in mesh.card.processes()

    assert mesh.gw("POST", "/v1/models/r/unload").json()["state"] == "unloaded"

    after = mesh.service("r", "/v1/model")  # the gateway's unload ended once the new process answered
    assert after["pid"] != before["pid"] and after["state"] == "unloaded"
    assert after["device_use"] is None  # a fresh process that has not touched the GPU
    assert before["pid"] not in mesh.card.processes()
    r = mesh.model("r")
    assert (r["state"], r["reserved_bytes"], r["resident_bytes"], r["unload_mode"]) == ("unloaded", 0, 0, "restart")
    assert r["freed_bytes"] == before["device_use"]["process_bytes"]  # measured: all of it, context included
    child = mesh.child("r")
    assert child.exit_codes[-1] == RESTART_EXIT_CODE and child.restarts == 0  # planned, not counted as a crash
    # and it serves again: loading it creates a new context in the new process
    assert mesh.gw("POST", "/v1/models/r/load").status_code == 200
    assert mesh.service("r", "/v1/model")["device_use"]["process_bytes"] > CONTEXT_BYTES


def test_memory_the_budget_does_not_explain_is_reported(mesh: Mesh) -> None:
    wait_until(lambda: mesh.gw("GET", "/v1/models").json()["devices"][0]["agrees"])
    mesh.card.set_foreign(1024 * MIB)  # another program takes 1 GiB of the card
    try:
        wait_until(lambda: not mesh.gw("GET", "/v1/models").json()["devices"][0]["agrees"])
        device = mesh.gw("GET", "/v1/models").json()["devices"][0]
        assert device["unaccounted_bytes"] >= 1024 * MIB and "does not manage" in device["message"]
        health = mesh.gw("GET", "/v1/health").json()
        assert health["status"] == "degraded" and any("does not manage" in w for w in health["warnings"])
    finally:
        mesh.card.set_foreign(0)
    wait_until(lambda: mesh.gw("GET", "/v1/health").json()["status"] == "ok")


def test_an_inference_past_its_limit_is_reported_and_counted_once(mesh: Mesh) -> None:
    mesh.gw("POST", "/v1/models/k/load")
    base = mesh.child("k").spec.base_url("127.0.0.1")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(mesh.http.post, f"{base}/v1/predict", json={"x": 1.0, "hold_s": 4.0})
        wait_until(lambda: mesh.service("k", "/health")["overdue"] == 1)
        assert mesh.service("k", "/health")["status"] == "degraded"
        assert "mediamesh_inference_overdue_total 1.0" in mesh.http.get(f"{base}/metrics").text
        wait_until(lambda: mesh.gw("GET", "/v1/health").json()["status"] == "degraded")
        health = mesh.gw("GET", "/v1/health").json()
        assert any("'k'" in w and "past its limit" in w for w in health["warnings"])
        k = mesh.model("k")
        assert k["overdue"] == 1
        # its memory is the process's measured use, counted once (not once more for the stuck inference)
        assert k["reserved_bytes"] == mesh.service("k", "/v1/model")["device_use"]["process_bytes"]
        assert slow.result().json() == {"y": 3.0}
    log = (Path(mesh.child("k").log_path)).read_text()
    assert "past its limit" in log
    wait_until(lambda: mesh.service("k", "/health")["status"] == "ok")
