"""Objects end to end: the worker stores the detector's objects (a gateway test double answers for the
models, see tests/support/fake_gateway.py), BLIP-2's named objects get their boxes, `?object=` filters
search and the library, the media detail lists them and deleting an item deletes them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support import media_samples as samples
from tests.support.storage_env import Stack, start_stack

SIZE = (64, 48)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("objects"), WORKER_OBJECT_EMBEDDINGS="true")
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def detector_registered(stack: Stack) -> None:
    stack.configure(down=[], delay_s={}, services=["cnn", "clip", "blip2", "detector"])


def ingest(stack: Stack, data: bytes) -> dict:
    with stack.client() as client:
        accepted = client.post("/v1/media", files={"file": ("photo.png", data, "image/png")})
        assert accepted.status_code == 202, accepted.text
        job = stack.wait_job(accepted.json()["job_id"])
        assert job["state"] == "done", job
        return client.get(f"/v1/media/{accepted.json()['media_id']}").json()


def object_rows(stack: Stack, media_id: str) -> list[tuple]:
    url = stack.env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT label, embedding_model, vector_dims(embedding) FROM objects "
                                  "WHERE media_id = %s ORDER BY score DESC", (media_id,)).fetchall()


def test_the_detail_lists_the_objects_with_boxes_and_blip2_objects_get_theirs(stack: Stack) -> None:
    media = ingest(stack, samples.png("green", SIZE, seed=11))
    assert media["status"] == "ready", media["degraded_reasons"]
    objects = media["objects"]
    assert [(o["label"], o["score"]) for o in objects] == [("square", 0.9), ("dog", 0.6)]
    assert objects[0]["box"] == pytest.approx({"x0": 6.4, "y0": 4.8, "x1": 57.6, "y1": 43.2})
    assert objects[1]["box_normalized"] == {"x0": 0.0, "y0": 0.0, "x1": 0.5, "y1": 0.5}
    assert objects[0]["detector"] == "fake-detector" and objects[0]["embedding_model"] == "fake-clip"
    # BLIP-2 said "square" without a place; the detector's square box is now its box
    assert media["analysis"]["objects"][0]["name"] == "square"
    assert media["analysis"]["objects"][0]["boxes"] == [objects[0]["box"]]
    assert [row[2] for row in object_rows(stack, media["id"])] == [512, 512]  # the crops' embeddings


def test_object_filter_finds_only_items_with_that_object(stack: Stack) -> None:
    green = ingest(stack, samples.png("green", SIZE, seed=12))
    red = ingest(stack, samples.png("red", SIZE, seed=13))
    with stack.client() as client:
        dogs = client.get("/v1/search", params={"object": "DOG"}).json()["results"]
        squares = {hit["media_id"] for hit in client.get("/v1/search", params={"object": "square"}).json()["results"]}
        listed = client.get("/v1/media", params={"object": "dog"}).json()["items"]
        with_text = client.get("/v1/search", params={"q": "green", "object": "dog"}).json()["results"]
    assert green["id"] in {hit["media_id"] for hit in dogs} and red["id"] not in {hit["media_id"] for hit in dogs}
    assert {green["id"], red["id"]} <= squares
    assert red["id"] not in {item["id"] for item in listed} and green["id"] in {item["id"] for item in listed}
    assert with_text and {hit["media_id"] for hit in with_text} <= {hit["media_id"] for hit in dogs}


def test_deleting_an_item_deletes_its_objects(stack: Stack) -> None:
    media = ingest(stack, samples.png("green", SIZE, seed=14))
    assert len(object_rows(stack, media["id"])) == 2
    with stack.client() as client:
        assert client.delete(f"/v1/media/{media['id']}").status_code in (200, 204)
    assert object_rows(stack, media["id"]) == []


def test_a_down_detector_degrades_only_the_objects(stack: Stack) -> None:
    stack.configure(down=["detector"])
    media = ingest(stack, samples.png("red", SIZE, seed=15))
    assert media["status"] == "degraded" and media["objects"] == []
    assert any(reason.startswith("detector:") for reason in media["degraded_reasons"])
    assert media["classification"]["label"] == "red" and media["analysis"]["objects"][0]["boxes"] == []


def test_without_a_detector_service_no_objects_and_nothing_degraded(stack: Stack) -> None:
    stack.configure(services=["cnn", "clip", "blip2"])
    media = ingest(stack, samples.png("red", SIZE, seed=16))
    assert media["status"] == "ready" and media["objects"] == []


def test_objects_the_cascade_classified_are_stored_with_their_classification(stack: Stack) -> None:
    stack.configure(cascade_objects=True)
    try:
        before = httpx.get(f"{stack.url}/fake/calls", timeout=10).json().get("detector", 0)
        media = ingest(stack, samples.png("green", SIZE, seed=17))
        after = httpx.get(f"{stack.url}/fake/calls", timeout=10).json().get("detector", 0)
    finally:
        stack.configure(cascade_objects=False)
    assert [(o["label"], o["classification"]["label"]) for o in media["objects"]] == [
        ("square", "green square"), ("dog", "green dog")]
    assert media["objects"][0]["detector"] == "detector" and after == before  # no second detector call
    assert media["analysis"]["objects"][0]["boxes"] == [media["objects"][0]["box"]]
