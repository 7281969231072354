"""The kit's task hooks: where each runs, timing, per-item batch errors, and the services' /v1 paths."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared.http.errors import BadInput
from shared.kit.batching import Batch
from shared.kit.service import create_service_app
from shared.kit.tasks import TaskRouter
from shared.schemas.common import TimedResponse
from tests.support.linear_service import LinearModel, LinearSettings


class Numbers(BaseModel):
    xs: list[float]


class Answer(TimedResponse):
    ys: list[float]
    threads: dict[str, str]


router = TaskRouter()
seen: dict[str, str] = {}


def predict_each(model: LinearModel, xs: list[float]) -> list[float | Exception]:
    seen["batch"] = threading.current_thread().name
    return [BadInput(f"{x} is negative") if x < 0 else y for x, y in zip(xs, model.predict(xs), strict=True)]


def decode(model: LinearModel, body: Numbers) -> list[float]:
    seen["decode"] = threading.current_thread().name
    return body.xs


@router.task("/v1/double", decode=decode, batch=Batch(predict_each), aliases=["/double"])
def double(model: LinearModel, body: Numbers, ys: list[float]) -> Answer:
    seen["encode"] = threading.current_thread().name
    return Answer(ys=ys, threads=dict(seen))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_service_app(LinearSettings(model_path=tmp_path, ballast_floats=1), LinearModel, [router], title="t")
    with TestClient(app) as test_client:
        assert test_client.post("/v1/double", json={"xs": [1]}).status_code == 503
        test_client.post("/v1/model/load")
        yield test_client


def test_hooks_run_off_the_event_loop_and_the_kit_times_the_call(client: TestClient) -> None:
    answer = client.post("/v1/double", json={"xs": [1, 4]}).json()
    assert answer["ys"] == [3.0, 9.0] and answer["processing_time_ms"] > 0
    threads = answer["threads"]
    assert threads["batch"].startswith("linear-infer")
    assert threads["decode"] != threads["encode"] and not threads["decode"].startswith("linear-infer")
    assert client.post("/double", json={"xs": [4]}).json()["ys"] == [9.0]  # the alias: same handler


def test_a_failed_item_fails_its_request(client: TestClient) -> None:
    answer = client.post("/v1/double", json={"xs": [1, -1]})
    assert answer.status_code == 422 and "-1.0 is negative" in answer.json()["detail"]


def test_a_batch_needs_batch_settings(tmp_path: Path) -> None:
    from services.llm.settings import LlmSettings

    with pytest.raises(TypeError, match="BatchSettings"):
        create_service_app(LlmSettings(model_path=tmp_path), LinearModel, [router], title="t")  # type: ignore[arg-type]


@pytest.mark.parametrize(("service", "canonical", "alias"), [
    ("blip2", "/v1/analyze-image", "/analyze-image"), ("blip2", "/v1/label-cluster", "/label-cluster"),
    ("whisper", "/v1/transcribe", "/transcribe"), ("llm", "/v1/generate", "/generate"),
    ("llm", "/v1/analyze-json-schema", "/analyze-json-schema"), ("llm", "/v1/enrich-cluster", "/enrich-cluster"),
])
def test_seed_paths_are_aliases_of_the_v1_paths(service: str, canonical: str, alias: str) -> None:
    router = importlib.import_module(f"services.{service}.routes").router
    endpoints = {r.path: r.endpoint for r in router.routes if isinstance(r, APIRoute)}
    assert endpoints[alias] is endpoints[canonical]
    seed = {"/analyze-image", "/label-cluster", "/transcribe", "/generate", "/analyze-json-schema", "/enrich-cluster"}
    assert all(path.startswith("/v1/") for path in set(endpoints) - seed)
