"""Safe image decoding: every bad image is a ServiceError with the right status, never a crash."""

from __future__ import annotations

import base64
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from shared.http.errors import BadInput, PayloadTooLarge, ServiceError, UnsupportedMedia
from shared.imaging import check_image, decode_base64, decode_image, decode_image_base64, encode_image_base64

LIMIT = 1_000_000


def encoded(fmt: str, size: tuple[int, int] = (12, 9), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 200 if mode in ("L", "P") else (200, 30, 10)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_allowed_format_decodes_to_rgb(fmt: str) -> None:
    image = decode_image(encoded(fmt), max_pixels=LIMIT)
    assert image.mode == "RGB" and image.size == (12, 9)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_other_modes_become_rgb(mode: str) -> None:
    assert decode_image(encoded("PNG", mode=mode), max_pixels=LIMIT).mode == "RGB"


def test_not_an_image_is_415() -> None:
    with pytest.raises(UnsupportedMedia, match="not an image") as err:
        decode_image(b"%PDF-1.7 certainly not a picture", max_pixels=LIMIT)
    assert err.value.status_code == 415


def test_a_readable_but_unsupported_format_is_415() -> None:
    with pytest.raises(UnsupportedMedia, match="PPM"):
        decode_image(encoded("PPM"), max_pixels=LIMIT)


def test_truncated_file_is_422() -> None:
    whole = encoded("PNG", (64, 64))
    with pytest.raises(BadInput, match="truncated") as err:
        decode_image(whole[: len(whole) // 2], max_pixels=LIMIT)
    assert err.value.status_code == 422


def test_more_pixels_than_the_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="above the limit") as err:
        decode_image(encoded("PNG", (200, 100)), max_pixels=10_000)
    assert err.value.status_code == 413


@pytest.mark.parametrize("pixels", [150, 500])  # PIL warns above its limit, refuses above twice that
def test_decompression_bomb_is_413(monkeypatch: pytest.MonkeyPatch, pixels: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(PayloadTooLarge, match="too large to decode safely"):
        decode_image(encoded("PNG", (pixels, 1)), max_pixels=LIMIT)


def test_empty_input_is_422() -> None:
    with pytest.raises(BadInput, match="empty"):
        decode_image(b"", max_pixels=LIMIT)
    with pytest.raises(BadInput, match="empty"):
        decode_base64("")


def test_bad_base64_is_422() -> None:
    with pytest.raises(BadInput, match="not valid base64"):
        decode_base64("abc$%^")


def test_data_urls_and_round_trips() -> None:
    image = Image.new("RGB", (5, 4), (1, 2, 3))
    data = encode_image_base64(image)
    assert decode_image_base64(f"data:image/png;base64,{data}", max_pixels=LIMIT).getpixel((0, 0)) == (1, 2, 3)
    assert decode_base64(data) == base64.b64decode(data)


def test_the_name_appears_in_the_message() -> None:
    with pytest.raises(UnsupportedMedia, match=r"images\[3\]"):
        decode_image(b"nope", max_pixels=LIMIT, name="images[3]")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_decode_or_give_a_service_error(raw: bytes) -> None:
    try:
        decode_image(raw, max_pixels=LIMIT)
    except ServiceError as exc:
        assert 400 <= exc.status_code < 500


PNG = encoded("PNG", (32, 32))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=len(PNG) - 1), st.integers(min_value=0, max_value=255))
def test_damaged_pngs_decode_or_give_a_service_error(position: int, byte: int) -> None:
    damaged = bytearray(PNG)
    damaged[position] = byte
    for candidate in (bytes(damaged), PNG[:position]):
        try:
            decode_image(candidate, max_pixels=LIMIT)
        except ServiceError as exc:
            assert 400 <= exc.status_code < 500


def test_the_header_check_refuses_what_the_full_decode_refuses_from_the_header() -> None:
    """`check_image` (the gateway's) reads no pixels: a damaged body passes it and fails the full decode."""
    buffer = io.BytesIO()
    Image.effect_noise((64, 48), 60).convert("RGB").save(buffer, "JPEG")  # noise: the body outweighs the header
    photo = buffer.getvalue()
    image = check_image(photo, max_pixels=LIMIT)
    assert (image.format, image.size) == ("JPEG", (64, 48))
    with pytest.raises(UnsupportedMedia):
        check_image(b"%PDF-1.7 certainly not a picture", max_pixels=LIMIT)
    with pytest.raises(PayloadTooLarge, match="64x48"):
        check_image(photo, max_pixels=1000)
    truncated = photo[: len(photo) * 3 // 4]
    assert check_image(truncated, max_pixels=LIMIT).size == (64, 48)
    with pytest.raises(BadInput, match="damaged or truncated"):
        decode_image(truncated, max_pixels=LIMIT)
