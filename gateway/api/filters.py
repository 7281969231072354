"""The filters `GET /v1/search` and `GET /v1/media` share: kind, label, upload time, the photo's EXIF
capture time, camera and position, and the objects the detector found. One parser, so both routes accept
the same parameters and refuse bad ones with the same messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Depends, Query

from shared.http.errors import BadInput
from storage import search

Kind = Literal["image", "audio", "video", "json"]


def aware(moment: datetime | None) -> datetime | None:
    """EXIF times are stored in UTC when the photo gives no zone: a time without one is read the same way."""
    return moment if moment is None or moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def near_point(near: str | None, within_km: float | None) -> search.Near | None:
    if near is None and within_km is None:
        return None
    if near is None or within_km is None:
        raise BadInput("`near` and `within_km` go together: e.g. near=48.8584,2.2945&within_km=5")
    try:
        latitude, longitude = (float(part) for part in near.split(","))
    except ValueError as exc:
        raise BadInput(f"`near` is `latitude,longitude` in decimal degrees (e.g. 48.8584,2.2945), "
                       f"not {near!r}") from exc
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):  # also refuses nan
        raise BadInput(f"`near` {near!r} is off the globe: latitude is within ±90, longitude within ±180")
    return search.Near(latitude, longitude, within_km)


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request
async def media_filters(
    kind: Kind | None = None,
    label: Annotated[str | None, Query(min_length=1, max_length=200,
                                       description="Only items the cascade gave this label (any case).")] = None,
    since: Annotated[datetime | None, Query(description="Uploaded at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Uploaded before (ISO 8601).")] = None,
    taken_after: Annotated[datetime | None, Query(description="Photos taken at or after this time (EXIF; a time "
                                                  "without a zone is UTC).")] = None,
    taken_before: Annotated[datetime | None, Query(description="Photos taken before this time (EXIF).")] = None,
    camera: Annotated[str | None, Query(min_length=1, max_length=200, description="Photos whose EXIF camera "
                                        "(\"Make Model\") contains this, in any case.")] = None,
    near: Annotated[str | None, Query(max_length=100, description="`lat,lon` in decimal degrees: photos whose EXIF "
                                      "GPS position is within `within_km` of it.")] = None,
    within_km: Annotated[float | None, Query(gt=0, le=20_100, description="The radius for `near`, in km.")] = None,
    object: Annotated[str | None, Query(min_length=1, max_length=200, description="Only items in which the "
                                        "detector found this object (its label, any case; a video's frames "
                                        "count), e.g. object=dog.")] = None,
) -> search.Filters:
    """The `taken_*`, `camera` and `near` filters read a photo's EXIF: items without that metadata do not match."""
    since, until = aware(since), aware(until)
    if since is not None and until is not None and since >= until:
        raise BadInput("`since` must be earlier than `until`")
    taken_after, taken_before = aware(taken_after), aware(taken_before)
    if taken_after is not None and taken_before is not None and taken_after >= taken_before:
        raise BadInput("`taken_after` must be earlier than `taken_before`")
    return search.Filters(kind, label, since, until, taken_after=taken_after, taken_before=taken_before,
                          camera=camera, near=near_point(near, within_km), object=object)


FiltersDep = Annotated[search.Filters, Depends(media_filters)]
