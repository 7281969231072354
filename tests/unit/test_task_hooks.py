"""The kit's task hooks: where each runs, timing, per-item batch errors, and the services' /v1 paths."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    # alone, the request decodes and runs its batch in one call on the inference thread
    assert threads["batch"].startswith("linear-infer") and threads["decode"] == threads["batch"]
    assert threads["decode"] != threads["encode"]
    assert client.post("/double", json={"xs": [4]}).json()["ys"] == [9.0]  # the alias: same handler


held = threading.Event()
release = threading.Event()
decoded_beside: list[str] = []


def held_batch(model: LinearModel, xs: list[float]) -> list[float | Exception]:
    if xs == [100.0]:  # the first request: hold the inference thread until the second has decoded
        held.set()
        release.wait(30)
    return list(model.predict(xs))


def decode_and_note(model: LinearModel, body: Numbers) -> list[float]:
    if body.xs != [100.0]:
        decoded_beside.append(threading.current_thread().name)
        release.set()
    return body.xs


@router.task("/v1/held", decode=decode_and_note, batch=Batch(held_batch))
def held_answer(model: LinearModel, body: Numbers, ys: list[float]) -> Answer:
    return Answer(ys=ys, threads={})


def test_while_one_request_runs_the_next_decodes_beside_it_and_both_answers_are_the_same(
    client: TestClient,
) -> None:
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/v1/held", json={"xs": [100]})
        assert held.wait(30)
        second = pool.submit(client.post, "/v1/held", json={"xs": [1, 4]})
        assert first.result().json()["ys"] == [201.0]
        assert second.result().json()["ys"] == [3.0, 9.0]  # what the same numbers get alone
    assert len(decoded_beside) == 1 and not decoded_beside[0].startswith("linear-infer")
    assert client.post("/v1/held", json={"xs": [1, 4]}).json()["ys"] == [3.0, 9.0]


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
