"""Photos: EXIF orientation applied before models and thumbnails; HEIC/HEIF and AVIF accepted; capture
time, camera and GPS read from EXIF (and anything malformed there left out, never an error)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gateway.api.detect import detect
from shared.exif import PhotoFacts, read_photo_facts
from shared.imaging import decode_image
from storage.media_files import MediaStore
from storage.thumbnails import ThumbnailStore
from tests.support import media_samples as samples
from tests.support.photos import BLUE, RED, photo, sideways

PIXELS = 10_000_000


def assert_upright(image: Image.Image) -> None:
    """The sideways sample, turned: portrait, red on top, blue below (lossy codecs: within a few levels)."""
    width, height = image.size
    assert height == 2 * width, image.size
    for (x, y), colour in (((width // 2, height // 8), RED), ((width // 2, height * 7 // 8), BLUE)):
        pixel = image.getpixel((x, y))
        assert isinstance(pixel, tuple) and all(abs(a - b) <= 8 for a, b in zip(pixel, colour, strict=True)), (x, y)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF", "AVIF"])
def test_a_sideways_photo_reaches_the_model_upright(fmt: str) -> None:
    assert_upright(decode_image(photo(fmt), max_pixels=PIXELS))


def test_without_an_orientation_tag_the_image_is_left_as_stored() -> None:
    assert decode_image(photo(orientation=None), max_pixels=PIXELS).size == (40, 20)


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF", "AVIF"])
def test_thumbnails_are_upright(tmp_path: Path, fmt: str) -> None:
    store = MediaStore(tmp_path / "media")
    sha, _ = store.put(photo(fmt, image=sideways(400, 200)))
    with Image.open(ThumbnailStore(tmp_path / "thumbs", store).get(sha, 64)) as thumbnail:
        assert_upright(thumbnail.convert("RGB"))


@pytest.mark.parametrize(("fmt", "mime"), [("HEIF", "image/heic"), ("AVIF", "image/avif")])
def test_heic_and_avif_uploads_are_images(fmt: str, mime: str) -> None:
    detected = detect(photo(fmt), max_image_pixels=PIXELS)
    assert (detected.kind, detected.mime) == ("image", mime)
    assert detected.photo.camera == "Canon EOS R5"


def test_an_mp4_is_still_a_video() -> None:  # same ISO container as HEIC/AVIF, a different brand
    assert detect(samples.video_mp4(seconds=1.0), max_image_pixels=PIXELS).kind == "video"


@pytest.mark.parametrize("fmt", ["JPEG", "HEIF", "AVIF"])
def test_capture_time_camera_and_position_are_read(fmt: str) -> None:
    facts = read_photo_facts(photo(fmt, offset="+02:00", gps=(-33.8568, 151.2153)))
    assert facts.taken_at == datetime(2024, 5, 1, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    assert facts.camera == "Canon EOS R5"  # the make is not repeated
    assert facts.latitude == pytest.approx(-33.8568, abs=1e-4)
    assert facts.longitude == pytest.approx(151.2153, abs=1e-4)


def test_a_time_without_offset_is_utc_and_make_and_model_join() -> None:
    facts = read_photo_facts(photo(make="Apple", model="iPhone 15 Pro", gps=None))
    assert facts == PhotoFacts(taken_at=datetime(2024, 5, 1, 10, 30, tzinfo=UTC), camera="Apple iPhone 15 Pro")


@pytest.mark.parametrize("exif", [
    {"taken": "0000:00:00 00:00:00"}, {"taken": "yesterday"}, {"offset": "+99:99"},
    {"make": "Bad\x00\x01Make", "model": None}, {"gps": (123.0, 2.0)},
])
def test_malformed_exif_is_left_out_not_refused(exif: dict[str, Any]) -> None:
    data = photo(**exif)
    facts = read_photo_facts(data)
    assert detect(data, max_image_pixels=PIXELS).kind == "image"
    if "taken" in exif:
        assert facts.taken_at is None
    if "offset" in exif:
        assert facts.taken_at is not None and facts.taken_at.tzinfo == UTC
    if "make" in exif:
        assert facts.camera == "Bad Make"
    if "gps" in exif:
        assert (facts.latitude, facts.longitude) == (None, None)


def test_images_without_exif_have_no_facts() -> None:
    assert read_photo_facts(samples.png("red")) == PhotoFacts()
    assert read_photo_facts(b"not an image") == PhotoFacts()
