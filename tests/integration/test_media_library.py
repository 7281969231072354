"""The library routes the web app reads: `GET /v1/media` (filters, pages, 422s), `/thumbnail` (made once,
kept on disk, images and video frames, bounded sizes) and `/file` (the original bytes and type).

Real processes: the storage routes in a gateway process (tests/support/fake_gateway.py), the worker,
Postgres + pgvector and Redis."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from tests.support import media_samples as samples
from tests.support.storage_env import Stack, start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("library"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def items(stack: Stack) -> dict[str, dict]:
    """red and blue pictures (labelled so by the fake cascade), a video, a spoken memo: name → upload answer."""
    uploads = {"red.png": samples.png("red", size=(400, 300), seed=11), "blue.png": samples.png("blue", seed=12),
               "clip.mp4": samples.video_mp4(seconds=2.0, colors=("green", "yellow")),
               "memo.wav": samples.spoken_wav("hello there")}
    accepted = {}
    with stack.client() as client:
        for name, data in uploads.items():
            answer = client.post("/v1/media", files={"file": (name, data)})
            assert answer.status_code == 202, answer.text
            accepted[name] = answer.json()
            assert stack.wait_job(answer.json()["job_id"])["state"] == "done"
    return accepted


def test_list_is_newest_first_without_frames_and_filters(stack: Stack, items: dict[str, dict]) -> None:
    with stack.client() as client:
        listed = client.get("/v1/media").json()
        assert [i["original_name"] for i in listed["items"]] == ["memo.wav", "clip.mp4", "blue.png", "red.png"]
        assert listed["total"] == 4  # the video's sampled frames are not listed
        red = listed["items"][-1]
        assert (red["label"], red["kind"], red["caption"]) == ("red", "image", "a red square on a plain background")
        assert [i["id"] for i in client.get("/v1/media", params={"kind": "image"}).json()["items"]] == [
            items["blue.png"]["media_id"], items["red.png"]["media_id"]]
        assert [i["id"] for i in client.get("/v1/media", params={"label": "RED"}).json()["items"]] == [
            items["red.png"]["media_id"]]
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert client.get("/v1/media", params={"since": later}).json() == {"items": [], "total": 0, "limit": 50,
                                                                          "offset": 0}


def test_list_pages(stack: Stack, items: dict[str, dict]) -> None:
    with stack.client() as client:
        first = client.get("/v1/media", params={"limit": 3}).json()
        second = client.get("/v1/media", params={"limit": 3, "offset": 3}).json()
    assert (len(first["items"]), len(second["items"]), first["total"], second["total"]) == (3, 1, 4, 4)
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


@pytest.mark.parametrize(("params", "message"), [
    ({"kind": "pdf"}, "kind"), ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset"),
    ({"since": "yesterday"}, "since"), ({"label": ""}, "label"),
    ({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, "`since` must be earlier than `until`"),
])
def test_bad_list_parameters_are_422_with_a_message(stack: Stack, params: dict, message: str) -> None:
    with stack.client() as client:
        answer = client.get("/v1/media", params=params)
    assert answer.status_code == 422
    assert message in str(answer.json()["detail"])


def test_thumbnail_is_a_bounded_jpeg_made_once_and_kept(stack: Stack, items: dict[str, dict]) -> None:
    red = items["red.png"]
    with stack.client() as client:
        answer = client.get(f"/v1/media/{red['media_id']}/thumbnail", params={"size": 100})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(answer.content))
        assert image.format == "JPEG" and image.size == (128, 96)  # 100 is snapped up to 128, aspect kept
        cached = stack.home / "thumbnails" / "128" / red["sha256"][:2] / f"{red['sha256']}.jpg"
        assert cached.read_bytes() == answer.content
        made = cached.stat().st_mtime_ns
        assert client.get(f"/v1/media/{red['media_id']}/thumbnail", params={"size": 128}).content == answer.content
        assert cached.stat().st_mtime_ns == made
        assert client.get(f"/v1/media/{red['media_id']}/thumbnail", params={"size": 5000}).status_code == 422
        assert client.get(f"/v1/media/{red['media_id']}/thumbnail", params={"size": 8}).status_code == 422


def test_video_thumbnail_is_its_first_frame_and_audio_has_none(stack: Stack, items: dict[str, dict]) -> None:
    with stack.client() as client:
        video = client.get(f"/v1/media/{items['clip.mp4']['media_id']}/thumbnail", params={"size": 64})
        assert video.status_code == 200
        r, g, b = Image.open(io.BytesIO(video.content)).convert("RGB").resize((1, 1)).getpixel((0, 0))
        assert g > 150 and r < 80 and b < 100  # the first second of the clip is green
        audio = client.get(f"/v1/media/{items['memo.wav']['media_id']}/thumbnail")
        assert audio.status_code == 404 and "audio" in audio.json()["detail"]
        assert client.get("/v1/media/nope/thumbnail").status_code == 404


def test_file_is_the_original_bytes_with_their_type(stack: Stack, items: dict[str, dict]) -> None:
    with stack.client() as client:
        for name, mime in (("red.png", "image/png"), ("memo.wav", "audio/")):
            answer = client.get(f"/v1/media/{items[name]['media_id']}/file")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(mime)
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.content == (stack.home / "media").joinpath(
                items[name]["sha256"][:2], items[name]["sha256"][2:4], items[name]["sha256"]).read_bytes()
        assert client.get("/v1/media/nope/file").status_code == 404
        assert client.get("/v1/media/..%2F..%2Fetc%2Fpasswd/file").status_code == 404
