"""`mediamesh up` as a user runs it: real service processes, Ctrl-C, a port in use, a child that dies."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mediamesh.cli.models import TINY_MARKER
from tests.support.mesh import MeshUp, run_cli
from tests.support.processes import free_port


@pytest.fixture
def home(tmp_path: Path, tiny_model: Callable[[str], Path]) -> Path:
    """A MEDIAMESH_HOME whose models are the cached tiny ones (so the launcher builds nothing)."""
    models = tmp_path / "home" / "models"
    models.mkdir(parents=True)
    for name in ("cnn", "clip"):
        (models / name).symlink_to(tiny_model(name))
    return tmp_path / "home"


@pytest.fixture
def mesh_factory(tmp_path: Path) -> Iterator[Callable[..., MeshUp]]:
    started: list[MeshUp] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> MeshUp:
        mesh = MeshUp(args, env or {}, tmp_path / f"up-{len(started)}.out").start()
        started.append(mesh)
        return mesh

    yield start
    for mesh in started:
        mesh.kill_everything()


def test_up_serves_every_service_and_ctrl_c_leaves_nothing(home: Path, mesh_factory: Callable[..., MeshUp]) -> None:
    ports = {"cnn": free_port(), "clip": free_port()}
    mesh = mesh_factory(["--only", "cnn,clip", "--no-gateway", "--no-worker", "--home", str(home),
                         "--port", f"cnn={ports['cnn']}", "--port", f"clip={ports['clip']}"])
    mesh.wait_for([f"http://127.0.0.1:{p}/health" for p in ports.values()], timeout_s=120)
    mesh.wait_output("mediamesh is up", timeout_s=30)

    for name, port in ports.items():
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["service"] == name and health["state"] == "unloaded"
    assert mesh.proc is not None
    children = psutil.Process(mesh.proc.pid).children()
    assert len(children) == 2
    for child in children:  # each leads its own process group: a terminal's Ctrl-C reaches only the launcher
        assert os.getpgid(child.pid) == child.pid
    logs = {p.name for p in (home / "logs").iterdir()}
    assert {"cnn.log", "clip.log"} <= logs

    assert mesh.interrupt() == 0
    assert mesh.leftovers() == []
    assert "mediamesh stopped" in mesh.text()


def test_port_in_use_names_the_port_and_its_process_and_starts_nothing(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["up", "--only", "cnn", "--no-gateway", "--no-worker", "--home", str(home),
                          "--port", f"cnn={port}"], env={})
    assert result.returncode == 1
    out = " ".join(result.stdout.split())
    assert f"port {port} (cnn) is already in use" in out
    assert f"pid {psutil.Process().pid}" in out  # psutil could tell whose it is: this test's
    assert "--port cnn=<free port>" in out
    assert not (home / "logs").exists()


def test_unknown_service_is_refused_with_the_choices(home: Path) -> None:
    result = run_cli(["up", "--only", "cnn,bert", "--home", str(home)], env={})
    assert result.returncode == 2
    assert "unknown service(s) bert" in " ".join((result.stdout + result.stderr).split())


def test_missing_model_is_built_and_a_child_that_dies_is_restarted_then_given_up_on(
    tmp_path: Path, mesh_factory: Callable[..., MeshUp]
) -> None:
    home = tmp_path / "fresh-home"  # no models at all: the launcher builds cnn's tiny one first
    port = free_port()
    mesh = mesh_factory(["--only", "cnn", "--no-gateway", "--no-worker", "--home", str(home),
                         "--port", f"cnn={port}"], env={"MEDIAMESH_UP_MAX_RESTARTS": "1"})
    url = f"http://127.0.0.1:{port}/health"
    mesh.wait_for([url], timeout_s=180)
    assert "built tiny (random-weight) model cnn" in mesh.text()
    assert (home / "models" / "cnn" / TINY_MARKER).is_file()
    assert (home / "logs" / "models-tiny.log").is_file()
    first = _service_pid(mesh)
    first.send_signal(signal.SIGKILL)
    mesh.wait_output("cnn was killed by SIGKILL; restarting in 1s (1/1)", timeout_s=20)
    mesh.wait_output("cnn is up again", timeout_s=120)
    second = _service_pid(mesh)
    assert second.pid != first.pid
    second.send_signal(signal.SIGKILL)
    mesh.wait_output("giving up on it", timeout_s=20)
    assert mesh.interrupt() == 0
    assert mesh.leftovers() == []


def _service_pid(mesh: MeshUp) -> psutil.Process:
    children = [c for c in mesh.remember_descendants() if "uvicorn" in " ".join(c.cmdline())]
    assert len(children) == 1, children
    return children[0]


def test_sigterm_while_still_starting_stops_what_was_started(home: Path, mesh_factory: Callable[..., MeshUp]) -> None:
    ports = {"cnn": free_port(), "clip": free_port()}
    mesh = mesh_factory(["--only", "cnn,clip", "--no-gateway", "--no-worker", "--home", str(home),
                         "--port", f"cnn={ports['cnn']}", "--port", f"clip={ports['clip']}"])
    deadline = time.monotonic() + 60
    while len(mesh.remember_descendants()) < 2:  # both services spawned, neither answering yet
        assert time.monotonic() < deadline, mesh.text()
        time.sleep(0.05)
    assert mesh.proc is not None
    mesh.proc.send_signal(signal.SIGTERM)
    assert mesh.proc.wait(timeout=60) == 0
    assert mesh.leftovers() == []
    assert "mediamesh is up" not in mesh.text() and "mediamesh stopped" in mesh.text()
