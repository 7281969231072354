"""`mediamesh health` against a stand-in gateway process: table contents and exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic_settings import BaseSettings, SettingsConfigDict

from tests.support.mesh import run_cli
from tests.support.processes import ServiceProcess, free_port

APP = "tests.integration.test_cli_health:create_fake_gateway"


class FakeGatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAKE_GATEWAY_")
    status: str = "ok"


def health_body(status: str) -> dict[str, object]:
    clip_up = status == "ok"
    return {
        "status": status,
        "services": [
            {"name": "cnn", "kind": "cnn", "url": "http://127.0.0.1:8004", "status": "up", "model_state": "loaded"},
            {"name": "clip", "kind": "clip", "url": "http://127.0.0.1:8005", "status": "up" if clip_up else "down",
             "model_state": "unloaded" if clip_up else None, "error": None if clip_up else "connection refused"},
        ],
        "dependencies": [
            {"name": "postgres", "status": "down" if status == "down" else "up", "latency_ms": 1.5},
            {"name": "redis", "status": "up", "latency_ms": 0.4},
        ],
    }


def create_fake_gateway() -> FastAPI:
    status = FakeGatewaySettings().status
    app = FastAPI()

    @app.get("/health")
    def alive() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/v1/health")
    def health() -> JSONResponse:
        return JSONResponse(health_body(status), status_code=200 if status == "ok" else 503)

    @app.get("/v1/models")
    def models() -> dict[str, object]:
        return {"object": "list", "budget_bytes": 6 * 2**30, "reserved_bytes": 100 * 2**20,
                "free_bytes": 6 * 2**30 - 100 * 2**20,
                "data": [{"id": "cnn", "object": "model", "created": 0, "owned_by": "mediamesh", "kind": "cnn",
                          "url": "http://127.0.0.1:8004", "state": "loaded", "reserved_bytes": 100 * 2**20,
                          "estimated_bytes": 90 * 2**20}]}

    return app


@pytest.fixture(scope="module", params=["ok", "degraded", "down"])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    logs = tmp_path_factory.mktemp("fake-gateway")
    proc = ServiceProcess(APP, {"FAKE_GATEWAY_STATUS": request.param}, logs / "gateway.log")
    try:  # not `with`: a start that times out must still stop the process
        proc.start()
        yield request.param, proc.url
    finally:
        proc.stop()


def test_health_prints_the_table_and_exits_by_status(gateway: tuple[str, str]) -> None:
    status, url = gateway
    result = run_cli(["health", "--url", url], env={})
    assert result.returncode == {"ok": 0, "degraded": 1, "down": 2}[status], result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"mediamesh: {status}" in result.stdout
    cnn = next(line for line in lines if line.startswith("│ cnn "))
    clip = next(line for line in lines if line.startswith("│ clip "))
    assert "up" in cnn and "loaded" in cnn and "100 MiB" in cnn
    assert "-" in clip.split("│")[5]  # clip holds nothing in the budget
    assert ("connection refused" in clip) is (status != "ok")
    postgres = next(line for line in lines if line.startswith("│ postgres "))
    assert "dependency" in postgres and "2 ms" in postgres


def test_health_json_is_the_report(gateway: tuple[str, str]) -> None:
    status, url = gateway
    result = run_cli(["health", "--url", url, "--json"], env={})
    assert json.loads(result.stdout)["status"] == status


def test_unreachable_gateway_is_down_with_a_hint(tmp_path: Path) -> None:
    result = run_cli(["health", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "2"], env={})
    assert result.returncode == 2
    flat = " ".join(result.stdout.split())
    assert "cannot get a health report" in flat and "mediamesh up" in flat
