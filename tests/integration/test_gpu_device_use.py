"""On a CUDA GPU, with the real NVML: a service reports its context, and a restart unload frees it.

The CPU suite covers the same behaviour on a fake card (test_device_accounting.py); this checks the
figures a real driver gives. Skipped without a GPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from shared.kit.nvml import nvml
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.gpu
LINEAR = "tests.support.linear_service:create_app"


def linear(tmp_path: Path, mode: str) -> ServiceProcess:
    env = {"LINEAR_DEVICE": "cuda", "LINEAR_UNLOAD_MODE": mode, "LINEAR_MODEL_PATH": str(tmp_path),
           "LINEAR_BALLAST_FLOATS": str(64 * 1024 * 1024)}  # 256 MiB of weights
    return ServiceProcess(LINEAR, env, tmp_path / f"{mode}.log")


def test_a_loaded_service_reports_context_allocator_and_the_rest(tmp_path: Path) -> None:
    with linear(tmp_path, "release") as service:
        assert httpx.get(f"{service.url}/v1/model").json()["device_use"] is None  # not touched yet
        loaded = httpx.post(f"{service.url}/v1/model/load", timeout=120).json()
        use = httpx.get(f"{service.url}/v1/model").json()["device_use"]
        assert use["context_bytes"] > 0 and use["allocator_bytes"] >= 256 * 1024 * 1024
        assert loaded["device_bytes"] >= use["context_bytes"] + use["allocator_bytes"]
        unloaded = httpx.post(f"{service.url}/v1/model/unload", timeout=120).json()
        # the context stays: a release unload gives back the weights only
        assert use["context_bytes"] <= unloaded["device_bytes"] < loaded["device_bytes"]


def test_a_restart_unload_gives_the_whole_process_back_to_the_card(tmp_path: Path) -> None:
    service = linear(tmp_path, "restart").start()
    try:
        loaded = httpx.post(f"{service.url}/v1/model/load", timeout=120).json()
        pid = httpx.get(f"{service.url}/v1/model").json()["pid"]
        device = nvml().device(0)
        assert device is not None
        free_before = device.free_bytes
        assert httpx.post(f"{service.url}/v1/model/unload", timeout=120).json()["restarting"]
        assert service.proc is not None and service.proc.wait(timeout=30) == 75
        deadline = time.monotonic() + 10
        while pid in (nvml().processes(0) or {}) and time.monotonic() < deadline:
            time.sleep(0.1)
        after = nvml().device(0)
        assert after is not None and pid not in (nvml().processes(0) or {})
        assert after.free_bytes - free_before >= 0.95 * loaded["device_bytes"]
    finally:
        service.stop()
