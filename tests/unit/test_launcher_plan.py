"""The launcher's plan (which processes, which command line, which environment) and its port check."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from mediamesh.launcher.plan import PlanOptions, plan_mesh
from mediamesh.launcher.ports import PortsInUse, check_ports, port_is_free, port_owner


def test_services_get_their_port_host_and_model_path(tmp_path: Path) -> None:
    plan = plan_mesh(PlanOptions(home=tmp_path, only=["clip", "cnn"], gateway=False, worker=False,
                                 ports={"clip": 18005}))
    by_name = {p.name: p for p in plan.processes}
    assert list(by_name) == ["cnn", "clip"]  # catalog order
    clip = by_name["clip"]
    assert clip.argv == [sys.executable, "-m", "uvicorn", "--factory", "services.clip.app:create_app",
                         "--host", "127.0.0.1", "--port", "18005"]
    model_path = str(tmp_path / "models" / "clip")
    assert clip.env == {"CLIP_HOST": "127.0.0.1", "CLIP_PORT": "18005", "CLIP_MODEL_PATH": model_path}
    assert clip.health_url("127.0.0.1") == "http://127.0.0.1:18005/health"
    assert by_name["cnn"].port == 8004
    assert plan.ports() == {8004: "cnn", 18005: "clip"}
    assert not plan.needs_infrastructure


def test_the_gateway_knows_exactly_the_services_started(tmp_path: Path) -> None:
    plan = plan_mesh(PlanOptions(home=tmp_path, host="0.0.0.0", only=["cnn"], worker=False,
                                 ports={"cnn": 18004, "gateway": 18000}))
    gateway = next(p for p in plan.processes if p.name == "gateway")
    assert json.loads(gateway.env["GATEWAY_SERVICES"]) == {"cnn": {"url": "http://127.0.0.1:18004", "kind": "cnn"}}
    assert gateway.env["GATEWAY_PORT"] == "18000" and gateway.health_path == "/health"
    assert plan.needs_infrastructure


def test_unknown_names_are_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown service.*bert.*choose from blip2, whisper, llm, cnn, clip"):
        plan_mesh(PlanOptions(home=tmp_path, only=["bert"]))
    with pytest.raises(ValueError, match="--port names unknown process.*redis"):
        plan_mesh(PlanOptions(home=tmp_path, ports={"redis": 6380}))


def test_two_processes_on_one_port_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cnn and clip would both listen on port 8004"):
        plan_mesh(PlanOptions(home=tmp_path, only=["cnn", "clip"], gateway=False, worker=False,
                              ports={"clip": 8004}))


def test_a_taken_port_is_named_with_its_owner() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        assert port_owner(port) is not None and port_owner(port).startswith("pid ")
        with pytest.raises(PortsInUse, match=rf"port {port} \(clip\) is already in use by pid \d+"):
            check_ports("127.0.0.1", {port: "clip"})
    assert port_is_free("127.0.0.1", port)
