"""EXIF search filters end to end: photos (JPEG, HEIC, AVIF) uploaded to the gateway, processed by the
worker, then found by capture time, camera and position — browsing and with a text query."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image

from tests.support import media_samples as samples
from tests.support.photos import photo
from tests.support.storage_env import Stack, start_stack

PARIS, SYDNEY = (48.8584, 2.2945), (-33.8568, 151.2153)


@dataclass(frozen=True)
class Library:
    stack: Stack
    ids: dict[str, str]  # upload name → media id

    @property
    def url(self) -> str:
        return self.stack.url


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    stack = start_stack(tmp_path_factory.mktemp("photos"))
    uploads = {
        "paris": photo("JPEG", Image.new("RGB", (64, 32), "red"), offset="+02:00", gps=PARIS),
        "sydney": photo("HEIF", Image.new("RGB", (64, 32), "blue"), taken="2023:12:24 18:00:00", make="Apple",
                        model="iPhone 15 Pro", gps=SYDNEY),
        "bare": photo("AVIF", Image.new("RGB", (64, 32), "green"), orientation=None, taken=None, make=None,
                      model=None, gps=None),
        "png": samples.png("red", seed=7),
    }
    ids: dict[str, str] = {}
    with stack.client() as client:
        for name, data in uploads.items():
            accepted = client.post("/v1/media", files={"file": (name, data)})
            assert accepted.status_code in (200, 201, 202), accepted.text
            ids[name] = accepted.json()["media_id"]
            assert accepted.json()["kind"] == "image"
            assert stack.wait_job(accepted.json()["job_id"])["state"] == "done"
    yield Library(stack, ids)
    stack.stop()


def found(library: Library, **params: str | float) -> list[str]:
    response = httpx.get(f"{library.url}/v1/search", params={"kind": "image", **params}, timeout=30)
    assert response.status_code == 200, response.text
    names = {media_id: name for name, media_id in library.ids.items()}
    return sorted(names[hit["media_id"]] for hit in response.json()["results"])


def test_heic_and_avif_uploads_are_processed_as_images(library: Library) -> None:
    assert found(library) == ["bare", "paris", "png", "sydney"]


def test_filter_by_capture_time(library: Library) -> None:
    assert found(library, taken_after="2024-01-01T00:00:00Z") == ["paris"]
    assert found(library, taken_before="2024-01-01") == ["sydney"]
    # 10:30 at +02:00 is 08:30 UTC: inclusive after, exclusive before; a time without a zone is UTC
    assert found(library, taken_after="2024-05-01T08:30:00Z") == ["paris"]
    assert found(library, taken_before="2024-05-01T08:30:00") == ["sydney"]
    assert found(library, taken_after="2024-05-01T10:30:00") == []


def test_filter_by_camera(library: Library) -> None:
    assert found(library, camera="canon") == ["paris"]
    assert found(library, camera="IPHONE 15") == ["sydney"]
    assert found(library, camera="%") == []  # a LIKE wildcard is a plain character here


def test_filter_by_position(library: Library) -> None:
    assert found(library, near="48.86,2.30", within_km=5) == ["paris"]  # ~0.5 km away
    assert found(library, near="48.86,2.30", within_km=0.1) == []
    assert found(library, near=f"{SYDNEY[0]},{SYDNEY[1]}", within_km=1) == ["sydney"]
    assert found(library, near="0,0", within_km=20_000) == ["paris", "sydney"]  # only photos with a position
    assert found(library, near="0,0", within_km=20_100) == ["paris", "sydney"]  # the whole globe: still only those


def test_filters_apply_to_a_text_query_and_hits_carry_the_metadata(library: Library) -> None:
    assert found(library, q="something red", min_similarity=-1, camera="canon") == ["paris"]
    assert found(library, q="something red", min_similarity=-1, taken_before="2024-01-01") == ["sydney"]
    hit = httpx.get(f"{library.url}/v1/search", params={"camera": "canon"}, timeout=30).json()["results"][0]
    assert (hit["camera"], hit["taken_at"]) == ("Canon EOS R5", "2024-05-01T08:30:00Z")


def listed(library: Library, **params: str | float) -> list[str]:
    response = httpx.get(f"{library.url}/v1/media", params={"kind": "image", **params}, timeout=30)
    assert response.status_code == 200, response.text
    names = {media_id: name for name, media_id in library.ids.items()}
    assert response.json()["total"] == len(response.json()["items"])
    return sorted(names[item["id"]] for item in response.json()["items"])


def test_the_library_list_takes_the_same_photo_filters(library: Library) -> None:
    assert listed(library) == ["bare", "paris", "png", "sydney"]
    assert listed(library, taken_after="2024-01-01T00:00:00Z") == ["paris"]
    assert listed(library, taken_before="2024-05-01T08:30:00") == ["sydney"]
    assert listed(library, camera="IPHONE 15") == ["sydney"]
    assert listed(library, near="48.86,2.30", within_km=5) == ["paris"]
    assert listed(library, near="0,0", within_km=20_100) == ["paris", "sydney"]
    assert listed(library, near="0,0", within_km=20_000, camera="canon") == ["paris"]
    item = httpx.get(f"{library.url}/v1/media", params={"camera": "canon"}, timeout=30).json()["items"][0]
    assert (item["camera"], item["taken_at"]) == ("Canon EOS R5", "2024-05-01T08:30:00Z")


@pytest.mark.parametrize("route", ["/v1/search", "/v1/media"])
@pytest.mark.parametrize(("params", "message"), [
    ({"near": "48.86,2.30"}, "go together"),
    ({"within_km": 5}, "go together"),
    ({"near": "Paris", "within_km": 5}, "latitude,longitude"),
    ({"near": "91,0", "within_km": 5}, "off the globe"),
    ({"near": "nan,nan", "within_km": 5}, "off the globe"),
    ({"near": "0,0", "within_km": 0}, "greater than 0"),
    ({"taken_after": "last week"}, "datetime"),
    ({"taken_after": "2024-02-01", "taken_before": "2024-01-01"}, "`taken_after` must be earlier"),
    ({"camera": ""}, "camera"),
])
def test_bad_filters_are_422_with_a_message(library: Library, route: str, params: dict[str, str | float],
                                            message: str) -> None:
    response = httpx.get(f"{library.url}{route}", params=params, timeout=30)
    assert response.status_code == 422 and message in response.text, response.text
