"""Upload type detection from content (never the name), the media store's paths, retry backoff."""

from __future__ import annotations

import pytest

from gateway.api.detect import detect
from shared.http.errors import BadInput, PayloadTooLarge, UnsupportedMedia
from storage.media_files import MediaStore, sha256_of
from tests.support import media_samples as samples
from worker.runner import backoff_delay

PIXELS = 10_000_000


@pytest.mark.parametrize(("data", "kind", "mime"), [
    (samples.png("red"), "image", "image/png"),
    (samples.json_bytes(), "json", "application/json"),
    (b'\xef\xbb\xbf  {"a": [1, 2]}', "json", "application/json"),
])
def test_detects_images_and_json(data: bytes, kind: str, mime: str) -> None:
    detected = detect(data, max_image_pixels=PIXELS)
    assert (detected.kind, detected.mime) == (kind, mime)


def test_detects_speech_as_audio() -> None:
    assert detect(samples.spoken_wav("hello"), max_image_pixels=PIXELS).kind == "audio"


@pytest.mark.parametrize("with_audio", [True, False])
def test_detects_video_with_or_without_sound(with_audio: bool) -> None:
    detected = detect(samples.video_mp4(seconds=1.0, with_audio=with_audio), max_image_pixels=PIXELS)
    assert (detected.kind, detected.mime) == ("video", "video/mp4")


def test_empty_file_is_422() -> None:
    with pytest.raises(BadInput, match="empty"):
        detect(b"", max_image_pixels=PIXELS)


def test_plain_text_is_415_whatever_its_name() -> None:
    with pytest.raises(UnsupportedMedia, match="not a file type we can process"):
        detect(b"just some words, not media", max_image_pixels=PIXELS)


def test_malformed_json_is_422_with_position() -> None:
    with pytest.raises(BadInput, match=r"malformed JSON: .* line 1, column \d+"):
        detect(b'{"a": 1,', max_image_pixels=PIXELS)


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_video_is_422(faststart: bool) -> None:
    video = samples.video_mp4(seconds=3.0, faststart=faststart)
    with pytest.raises(BadInput, match="truncated"):
        detect(video[: len(video) // 2], max_image_pixels=PIXELS)


def test_truncated_image_is_422() -> None:
    with pytest.raises(BadInput, match="truncated"):
        detect(samples.png("blue", size=(200, 200))[:300], max_image_pixels=PIXELS)


def test_image_above_pixel_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge):
        detect(samples.png("blue", size=(200, 200)), max_image_pixels=1000)


def test_media_store_paths_come_from_the_hash_only(tmp_path) -> None:
    store = MediaStore(tmp_path)
    sha, relative = store.put(b"hello")
    assert sha == sha256_of(b"hello") and relative == f"{sha[:2]}/{sha[2:4]}/{sha}"
    assert store.put(b"hello") == (sha, relative)  # idempotent
    assert store.read(sha) == b"hello"
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(n, 2.0, 10.0) for n in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
