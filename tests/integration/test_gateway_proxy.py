"""The proxy passes requests and answers through unchanged (JSON, multipart, query, errors, SSE),
and the API key guards every endpoint but the health and metrics ones.

The upstream is the kit's linear service plus an echo router defined here (`echo_app`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from shared.kit.service import LifecycleDep, create_service_app
from tests.support.linear_service import LinearModel, LinearSettings
from tests.support.processes import ServiceProcess

echo = APIRouter()


@echo.post("/echo")
async def echo_request(request: Request, lifecycle: LifecycleDep) -> JSONResponse:
    async with lifecycle.use():
        body = await request.body()
    return JSONResponse({"content_type": request.headers.get("content-type"), "query": request.url.query,
                         "bytes": len(body), "head": body[:40].decode(errors="replace")},
                        status_code=int(request.query_params.get("status", 200)))


@echo.post("/v1/chat/completions")
async def chat(lifecycle: LifecycleDep) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        async with lifecycle.use():
            for i in range(3):
                yield f"data: {json.dumps({'i': i})}\n\n"
                await asyncio.sleep(0.2)
            yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def echo_app() -> FastAPI:
    settings = LinearSettings()
    return create_service_app(settings, LinearModel, [echo], title="echo")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("proxy")
    env = {"LINEAR_NAME": "echo", "LINEAR_MODEL_PATH": str(logs)}
    upstream = ServiceProcess("tests.integration.test_gateway_proxy:echo_app", env, logs / "echo.log")
    with upstream:
        services = {"echo": {"url": upstream.url, "kind": "linear"},
                    "gone": {"url": "http://127.0.0.1:9", "kind": "linear"}}
        env = {"GATEWAY_STORAGE_ENABLED": "false", "GATEWAY_SERVICES": json.dumps(services),
               "GATEWAY_API_KEY": "s3cret", "GATEWAY_MAX_IN_MEMORY_BYTES": "300000"}
        with ServiceProcess("gateway.app:create_app", env, logs / "gateway.log") as proc:
            yield proc


@pytest.fixture
def gw(gateway: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30, headers={"Authorization": "Bearer s3cret"}) as client:
        yield client


def test_json_query_and_status_pass_through(gw: httpx.Client) -> None:
    answer = gw.post("/v1/services/echo/echo?status=201&lang=de", json={"hello": "world"})
    assert answer.status_code == 201
    body = answer.json()
    assert body["content_type"] == "application/json" and body["query"] == "status=201&lang=de"
    assert json.loads(body["head"]) == {"hello": "world"} and body["bytes"] == len(body["head"])


def test_multipart_upload_passes_through(gw: httpx.Client) -> None:
    answer = gw.post("/v1/services/echo/echo", files={"file": ("a.wav", b"RIFF" + b"\0" * 1000, "audio/wav")},
                     data={"language": "en"})
    body = answer.json()
    assert answer.status_code == 200 and body["content_type"].startswith("multipart/form-data; boundary=")
    assert body["bytes"] > 1000


def test_service_errors_pass_through_with_their_message(gw: httpx.Client) -> None:
    answer = gw.post("/v1/services/echo/no-such-route", json={})
    assert answer.status_code == 404 and answer.json() == {"detail": "Not Found"}
    assert gw.post("/v1/services/echo/echo?status=418", content=b"x").status_code == 418


def test_unknown_and_unreachable_services(gw: httpx.Client) -> None:
    unknown = gw.post("/v1/services/nope/v1/predict", json={"x": 1})
    assert unknown.status_code == 404 and "known services: echo, gone" in unknown.json()["detail"]
    down = gw.post("/v1/services/gone/v1/predict", json={"x": 1})
    assert down.status_code in (502, 503) and "'gone'" in down.json()["detail"]
    assert gw.get("/v1/health").json()["status"] == "degraded"


def test_get_is_forwarded_without_holding_the_model(gw: httpx.Client) -> None:
    gw.post("/v1/models/echo/unload")
    answer = gw.get("/v1/services/echo/v1/model")
    assert answer.status_code == 200 and answer.json()["state"] == "unloaded"  # a GET runs no model: none loaded
    assert next(m for m in gw.get("/v1/models").json()["data"] if m["id"] == "echo")["state"] == "unloaded"


@pytest.mark.parametrize(("path", "status", "phrase"), [
    ("%16abc", 400, "control characters"), ("v1/%00model", 400, "control characters"),
    ("v1/%7f", 400, "control characters"), ("v1/%2e%2e/%2e%2e/admin", 400, "'..'"), ("%2e%2e/echo", 400, "'..'"),
    ("echo%0d%0aX-Injected:%201", 404, "Not Found"),  # no route matches a line break: refused by the router
])
def test_control_characters_and_dot_segments_in_a_proxied_path_are_refused(
    gw: httpx.Client, path: str, status: int, phrase: str
) -> None:
    for method in ("GET", "POST"):
        answer = gw.request(method, f"/v1/services/echo/{path}", json={})
        assert answer.status_code == status and phrase in answer.json()["detail"], answer.text
    assert "x-injected" not in gw.post("/v1/services/echo/echo", json={}).headers


def test_odd_but_printable_paths_are_encoded_and_passed_on(gw: httpx.Client) -> None:
    for path in ("ech%20o", "%C3%A9cho", "echo%3Fstatus=201"):
        answer = gw.post(f"/v1/services/echo/{path}", json={})
        assert answer.status_code == 404 and answer.json() == {"detail": "Not Found"}  # the service's own 404
    bad_name = gw.post("/v1/services/%16/echo", json={})
    assert bad_name.status_code == 404 and "known services" in bad_name.json()["detail"]


def test_server_sent_events_are_streamed_and_hold_the_model(gw: httpx.Client) -> None:
    arrivals = []
    with gw.stream("POST", "/v1/services/echo/v1/chat/completions", json={"stream": True}) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith("data: "):
                arrivals.append(line)
                if len(arrivals) == 1:
                    models = gw.get("/v1/models").json()["data"]
                    assert next(m for m in models if m["id"] == "echo")["in_flight"] == 1
    assert arrivals[-1] == "data: [DONE]" and len(arrivals) == 4
    models = gw.get("/v1/models").json()["data"]
    assert next(m for m in models if m["id"] == "echo")["in_flight"] == 0


def test_oversized_upload_is_refused(gw: httpx.Client) -> None:
    answer = gw.post("/v1/services/echo/echo", content=b"x" * 400_000)
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]


def test_api_key_is_required_except_for_health_and_metrics(gateway: ServiceProcess) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as anonymous:
        refused = anonymous.get("/v1/models")
        assert refused.status_code == 401 and "API key" in refused.json()["detail"]
        assert anonymous.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert anonymous.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/v1/health").status_code == 200
        metrics = anonymous.get("/metrics")
        assert metrics.status_code == 200 and "mediamesh_budget_reserved_bytes" in metrics.text
        assert 'route="/v1/services/{name}/{path:path}",status="200"' in metrics.text


def test_bad_classify_image_is_refused_at_the_gateway(gw: httpx.Client, tmp_path: Path) -> None:
    answer = gw.post("/v1/classify", json={"image": "aGVsbG8sIG5vdCBhbiBpbWFnZQ=="})
    assert answer.status_code == 415 and "not an image" in answer.json()["detail"]
    upload = gw.post("/v1/classify/upload", files={"file": ("x.png", b"", "image/png")})
    assert upload.status_code == 422 and "empty" in upload.json()["detail"]
