"""Where a service says its model sits, and how the gateway turns that into per-device budgets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from shared.kit import nvml
from shared.kit.placement import placement
from tests.support.fake_nvml import FakeCard, FakePynvml
from tests.support.linear_service import LinearSettings


def test_a_service_names_its_node_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAMESH_NODE", "gpu-node-3")
    monkeypatch.setenv("LINEAR_DEVICE", "cuda:1")
    settings = LinearSettings()
    assert (settings.node.name, settings.device) == ("gpu-node-3", "cuda:1")
    assert placement(torch.device("cpu"), settings.node.name).key == "gpu-node-3/cpu"
    monkeypatch.setenv("LINEAR_DEVICE", "gpu1")
    with pytest.raises(ValidationError, match="auto|cpu|cuda"):
        LinearSettings()


def test_a_gpu_is_named_through_cuda_visible_devices_without_starting_cuda(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The gateway polls `/v1/model` before the first load: naming the GPU must not create a CUDA context."""
    fake = FakePynvml(FakeCard(tmp_path / "card.json"), device_count=2)
    nvml.use_library(fake)
    try:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
        found = placement(torch.device("cuda:0"), "n")
        assert found.device == "cuda:0" and found.uuid == fake._uuid(1)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc,0")
        assert placement(torch.device("cuda"), "n").uuid == "GPU-abc"
        assert placement(torch.device("cuda:1"), "n").uuid == fake._uuid(0)
        assert placement(torch.device("cuda:2"), "n").uuid is None  # not visible to this process
    finally:
        nvml.use_library(None)
    assert not torch.cuda.is_initialized()


@pytest.mark.gpu
def test_a_gpu_is_named_by_its_uuid() -> None:
    found = placement(torch.device("cuda"), "n")
    assert found.device == "cuda:0" and found.uuid is not None and found.uuid.startswith(("GPU-", "MIG-"))
    assert found.key == f"n/{found.uuid}"


def test_each_device_budget_keeps_the_headroom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAMESH_QUEUE", "mesh:a")
    settings = GatewaySettings(services={"a": "http://127.0.0.1:9"}, storage_enabled=False, headroom_bytes=100,
                               budget_bytes=1000, device_budgets={"n/GPU-1": 500})
    assert settings.usable_device_budgets == {"n/GPU-1": 400} and settings.usable_budget_bytes == 900
    assert settings.ledger_namespace == "mesh:a:ledger"  # meshes sharing one Redis keep their ledgers apart
    with pytest.raises(ValidationError, match="GATEWAY_DEVICE_BUDGETS"):
        GatewaySettings(services={"a": "http://127.0.0.1:9"}, headroom_bytes=100, device_budgets={"n/cpu": 80})
