"""The service kit's contract, driven over HTTP against a real uvicorn process (y = 2x + 1)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.processes import ServiceProcess

APP = "tests.support.linear_service:create_app"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("linear")
    env = {"LINEAR_LOAD_DELAY_S": "0.5", "LINEAR_MAX_REQUEST_BYTES": "200000", "LINEAR_MAX_IMAGE_PIXELS": "1000000",
           "LINEAR_MODEL_PATH": str(logs)}
    with ServiceProcess(APP, env, logs / "service.log") as proc:
        yield proc


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as c:
        c.post("/v1/model/unload")
        yield c


def png_b64(size: tuple[int, int] = (8, 6)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_load_task_unload_cycle(client: httpx.Client) -> None:
    assert client.get("/health").json()["state"] == "unloaded"
    assert client.get("/ready").status_code == 503
    before = client.get("/v1/model").json()
    assert before["state"] == "unloaded" and before["memory_bytes"] == 0
    assert before["estimated_bytes"] == 4_000_000

    refused = client.post("/v1/predict", json={"x": 4})
    assert refused.status_code == 503
    assert "not loaded" in refused.json()["detail"] and "Retry-After" in refused.headers

    loaded = client.post("/v1/model/load").json()
    assert loaded["state"] == "loaded" and loaded["memory_bytes"] >= 4_000_000
    assert client.get("/ready").status_code == 200
    assert client.post("/v1/predict", json={"x": 4}).json() == {"y": 9.0}

    info = client.get("/v1/model").json()
    assert info["footprint_bytes"] == info["memory_bytes"] >= 4_000_000
    assert info["load_seconds"] >= 0.5 and info["last_used"] is not None

    unloaded = client.post("/v1/model/unload").json()
    assert unloaded["freed_bytes"] >= 0.95 * loaded["memory_bytes"]
    assert client.get("/v1/model").json()["memory_bytes"] == 0
    assert client.post("/v1/predict", json={"x": 4}).status_code == 503
    assert client.post("/v1/model/load").json()["state"] == "loaded"
    assert client.post("/v1/predict", json={"x": -1}).json() == {"y": -1.0}


def test_load_and_unload_are_idempotent(client: httpx.Client) -> None:
    assert client.post("/v1/model/unload").json()["already_unloaded"] is True
    client.post("/v1/model/load")
    assert client.post("/v1/model/load").json()["already_loaded"] is True


def test_concurrent_loads_collapse_into_one(client: httpx.Client) -> None:
    calls_before = client.get("/v1/model").json()["loads"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: client.post("/v1/model/load").json(), range(8)))
    assert all(r["state"] == "loaded" for r in results)
    assert client.get("/v1/model").json()["loads"] == calls_before + 1


def test_unload_waits_for_in_flight_requests(service: ServiceProcess, client: httpx.Client) -> None:
    client.post("/v1/model/load")
    with ThreadPoolExecutor(2) as pool, httpx.Client(base_url=service.url, timeout=30) as other:
        slow = pool.submit(other.post, "/v1/predict", json={"x": 1, "hold_s": 1.0})
        while client.get("/v1/model").json()["in_flight"] == 0:
            pass
        unload = pool.submit(client.post, "/v1/model/unload")
        assert slow.result().json() == {"y": 3.0}
        assert unload.result().json()["state"] == "unloaded"


def test_batched_answers_equal_unbatched(client: httpx.Client) -> None:
    client.post("/v1/model/load")
    xs = [float(i) for i in range(24)]
    with ThreadPoolExecutor(12) as pool:
        ys = list(pool.map(lambda x: client.post("/v1/predict", json={"x": x}).json()["y"], xs))
    assert ys == [2 * x + 1 for x in xs]
    metrics = client.get("/metrics").text
    assert "mediamesh_batch_size_count" in metrics
    assert 'mediamesh_requests_total{method="POST",route="/v1/predict",status="200"}' in metrics


@pytest.mark.parametrize(
    ("payload", "status", "phrase"),
    [
        (base64.b64encode(b"hello, not an image").decode(), 415, "not an image"),
        ("%%%not base64%%%", 422, "not valid base64"),
        ("", 422, "empty"),
        (png_b64()[:60], 422, "truncated"),
        (png_b64((2000, 1000)), 413, "above the limit"),
    ],
    ids=["not-an-image", "bad-base64", "empty", "truncated", "decompression-bomb"],
)
def test_bad_images_get_a_clear_4xx(client: httpx.Client, payload: str, status: int, phrase: str) -> None:
    answer = client.post("/v1/image-size", json={"image": payload})
    assert answer.status_code == status, answer.text
    assert phrase in answer.json()["detail"]
    assert client.post("/v1/image-size", json={"image": png_b64()}).json() == {"width": 8, "height": 6}


def test_oversized_request_is_refused(client: httpx.Client) -> None:
    answer = client.post("/v1/image-size", json={"image": "A" * 300_000})
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]
    assert client.get("/health").status_code == 200


def test_failed_load_shows_the_reason(tmp_path: Path) -> None:
    env = {"LINEAR_FAIL_LOAD": "true", "LINEAR_MODEL_PATH": str(tmp_path)}
    with ServiceProcess(APP, env, tmp_path / "log") as proc, httpx.Client(base_url=proc.url) as c:
        answer = c.post("/v1/model/load")
        assert answer.status_code == 503 and "weights are corrupt" in answer.json()["detail"]
        assert c.get("/health").json()["state"] == "error"
        assert "weights are corrupt" in c.get("/v1/model").json()["error"]
