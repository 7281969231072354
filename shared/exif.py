"""What a photo says about itself in EXIF: when it was taken, with which camera, where.

Read at upload and stored on the media row, so search can filter by them. EXIF is written by cameras,
phones and editors of every quality: anything missing, malformed or out of range is left out (None),
never an error — a photo is accepted whatever its metadata.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from PIL import ExifTags, Image

import shared.imaging  # noqa: F401  (registers the HEIF opener, so HEIC metadata is read too)

_TEXT_LIMIT = 200


@dataclass(frozen=True)
class PhotoFacts:
    taken_at: datetime | None = None
    camera: str | None = None
    latitude: float | None = None
    longitude: float | None = None


def read_photo_facts(data: bytes) -> PhotoFacts:
    """Capture time (DateTimeOriginal, else DateTime; UTC unless the photo gives its offset), camera
    ("Make Model") and GPS position of an image's bytes; an empty PhotoFacts when it has no EXIF."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            details = exif.get_ifd(ExifTags.IFD.Exif)
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001  any unreadable EXIF block means "no metadata", see the module doc
        return PhotoFacts()
    latitude, longitude = _position(gps)
    return PhotoFacts(taken_at=_taken_at(details, exif), camera=_camera(exif), latitude=latitude,
                      longitude=longitude)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    return cleaned[:_TEXT_LIMIT] or None


def _camera(exif: Image.Exif) -> str | None:
    make, model = _text(exif.get(ExifTags.Base.Make)), _text(exif.get(ExifTags.Base.Model))
    if make and model and model.lower().startswith(make.lower()):
        return model  # "Canon" + "Canon EOS R5" is one name, not "Canon Canon EOS R5"
    return " ".join(part for part in (make, model) if part) or None


def _taken_at(details: dict[int, object], exif: Image.Exif) -> datetime | None:
    raw = _text(details.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime))
    if raw is None:
        return None
    try:
        taken = datetime.strptime(raw[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return taken.replace(tzinfo=_offset(_text(details.get(ExifTags.Base.OffsetTimeOriginal))))


def _offset(raw: str | None) -> timezone:
    """EXIF's "+02:00"; a photo without one is taken as UTC (the camera's clock, whatever zone it was in)."""
    if raw is None or len(raw) != 6 or raw[0] not in "+-" or raw[3] != ":":
        return UTC
    try:
        minutes = int(raw[1:3]) * 60 + int(raw[4:6])
        return timezone(timedelta(minutes=minutes if raw[0] == "+" else -minutes))
    except ValueError:  # not digits, or beyond ±24 h
        return UTC


def _position(gps: dict[int, object]) -> tuple[float | None, float | None]:
    latitude = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S", 90)
    longitude = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W", 180)
    if latitude is None or longitude is None:
        return None, None
    return latitude, longitude


def _degrees(value: object, ref: object, negative: str, bound: float) -> float | None:
    """(degrees, minutes, seconds) rationals and an N/S or E/W reference → signed decimal degrees."""
    try:
        d, m, s = (float(part) for part in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    degrees = d + m / 60 + s / 3600
    if not math.isfinite(degrees) or degrees > bound or min(d, m, s) < 0:
        return None
    return -degrees if _text(ref) == negative else degrees
