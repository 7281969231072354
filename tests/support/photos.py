"""Photos with EXIF, as cameras and phones write them: a sideways sensor image plus an orientation tag,
capture time, camera and GPS — in JPEG, HEIC and AVIF."""

from __future__ import annotations

import io
from typing import Any

from PIL import ExifTags, Image

import shared.imaging  # noqa: F401  (registers the HEIF writer too)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def sideways(width: int = 40, height: int = 20) -> Image.Image:
    """Stored landscape, left half red and right half blue: with orientation 6 (turn 90° clockwise to
    view) it is a portrait photo, red on top."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


def exif_block(*, orientation: int | None = 6, taken: str | None = "2024:05:01 10:30:00", offset: str | None = None,
               make: str | None = "Canon", model: str | None = "Canon EOS R5",
               gps: tuple[float, float] | None = (48.8584, 2.2945)) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if make is not None:
        exif[ExifTags.Base.Make] = make
    if model is not None:
        exif[ExifTags.Base.Model] = model
    details = exif.get_ifd(ExifTags.IFD.Exif)
    if taken is not None:
        details[ExifTags.Base.DateTimeOriginal] = taken
    if offset is not None:
        details[ExifTags.Base.OffsetTimeOriginal] = offset
    if gps is not None:
        exif.get_ifd(ExifTags.IFD.GPSInfo).update({
            ExifTags.GPS.GPSLatitudeRef: "N" if gps[0] >= 0 else "S", ExifTags.GPS.GPSLatitude: _dms(gps[0]),
            ExifTags.GPS.GPSLongitudeRef: "E" if gps[1] >= 0 else "W", ExifTags.GPS.GPSLongitude: _dms(gps[1]),
        })
    return exif


def photo(fmt: str = "JPEG", image: Image.Image | None = None, **exif: Any) -> bytes:
    """`fmt`: JPEG, HEIF (a HEIC file) or AVIF; `exif`: the arguments of `exif_block`."""
    buffer = io.BytesIO()
    (image or sideways()).save(buffer, fmt, exif=exif_block(**exif).tobytes())
    return buffer.getvalue()


def _dms(degrees: float) -> tuple[float, float, float]:
    degrees = abs(degrees)
    minutes = (degrees - int(degrees)) * 60
    return float(int(degrees)), float(int(minutes)), round((minutes - int(minutes)) * 60, 4)
