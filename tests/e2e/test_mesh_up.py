"""The whole mesh as a user runs it: `mediamesh up` with tiny models and embedded Postgres + Redis,
ingest an image through the gateway, find it by search, `mediamesh health`, Ctrl-C, nothing left."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image, ImageDraw

from tests.support.mesh import MeshUp, run_cli
from tests.support.processes import free_port

SERVICES = ("cnn", "clip", "blip2")  # what the image pipeline calls; whisper and llm stay off to spare the CPU


@pytest.fixture
def home(tmp_path: Path, tiny_model: Callable[[str], Path]) -> Path:
    models = tmp_path / "home" / "models"
    models.mkdir(parents=True)
    for name in SERVICES:
        (models / name).symlink_to(tiny_model(name))
    return tmp_path / "home"


@pytest.fixture
def mesh(home: Path, tmp_path: Path) -> Iterator[tuple[MeshUp, dict[str, int]]]:
    ports = {name: free_port() for name in ("gateway", *SERVICES)}
    args = ["--only", ",".join(SERVICES), "--home", str(home), *(f"--port={n}={p}" for n, p in ports.items())]
    up = MeshUp(args, {"MEDIAMESH_HOME": str(home)}, tmp_path / "up.out").start()
    try:
        yield up, ports
    finally:
        up.kill_everything()
        for proc in _processes_using(home):  # embedded servers after a failed test
            proc.kill()


def png_bytes() -> bytes:
    image = Image.new("RGB", (96, 96), (240, 240, 240))
    ImageDraw.Draw(image).ellipse((16, 16, 80, 80), fill=(10, 10, 10))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_up_ingest_search_health_and_ctrl_c(mesh: tuple[MeshUp, dict[str, int]], home: Path) -> None:
    up, ports = mesh
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    up.wait_for([f"http://127.0.0.1:{p}/health" for p in ports.values()], timeout_s=300)
    up.wait_output("mediamesh is up", timeout_s=120)
    infrastructure = _processes_using(home)
    assert infrastructure, "embedded Postgres and Redis should run with their data under MEDIAMESH_HOME"

    with httpx.Client(base_url=gateway, timeout=60) as client:
        accepted = client.post("/v1/media", files={"file": ("black-circle.png", png_bytes(), "image/png")})
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        job = _wait_for_job(client, body["job_id"], timeout_s=300)
        assert job["state"] == "done", job
        found = client.get("/v1/search", params={"q": "a black circle"}).json()
        assert body["media_id"] in [hit["media_id"] for hit in found["results"]], found

    deadline = time.monotonic() + 60  # the gateway polls every 5 s; a service busy loading may lag one poll
    while (health := run_cli(["health", "--url", gateway], env={})).returncode != 0 and time.monotonic() < deadline:
        time.sleep(2)
    assert health.returncode == 0, health.stdout + health.stderr
    for name in (*SERVICES, "postgres", "redis"):
        assert any(line.startswith(f"│ {name} ") and " up " in line for line in health.stdout.splitlines()), name

    assert up.interrupt(timeout_s=90) == 0
    assert up.leftovers() == []
    still = [p for p in infrastructure if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert still == [], f"embedded servers left running: {still}"
    assert "mediamesh stopped" in up.text()


def _wait_for_job(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not finished after {timeout_s}s: {job}")


def _processes_using(home: Path) -> list[psutil.Process]:
    """Embedded Postgres (its data folder on the command line) and Redis (working folder = its data folder)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        cwd = proc.info["cwd"] or ""
        if str(home) in cmdline or cwd.startswith(str(home)):
            found.append(proc)
    return found
