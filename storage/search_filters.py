"""The filters a search or a library listing takes: kind, label, upload time, the photo's EXIF capture
time, camera and position, and the objects the detector found in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select

from storage.models import Classification, Media, MediaObject, VideoFrame

EARTH_RADIUS_KM = 6371.0088  # the mean radius


@dataclass(frozen=True)
class Near:
    """Within `km` of a point (great-circle distance); only items with a GPS position match."""

    latitude: float
    longitude: float
    km: float

    def clause(self) -> Any:
        lat1, lat2 = func.radians(self.latitude), func.radians(Media.latitude)
        half_dlat = func.radians(Media.latitude - self.latitude) / 2
        half_dlon = func.radians(Media.longitude - self.longitude) / 2
        haversine = func.power(func.sin(half_dlat), 2) + func.cos(lat1) * func.cos(lat2) * func.power(
            func.sin(half_dlon), 2)
        # LEAST: rounding can push the haversine a hair above 1, outside asin's domain. LEAST also skips a NULL
        # (no position) and would answer 1, half the globe away: within a radius that large without the check.
        distance = 2 * EARTH_RADIUS_KM * func.asin(func.sqrt(func.least(haversine, 1.0)))
        return and_(Media.latitude.is_not(None), Media.longitude.is_not(None), distance <= self.km)


@dataclass(frozen=True)
class Filters:
    kind: str | None = None
    label: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # from the photo's EXIF: capture time, camera (any case, any part of "Make Model"), GPS position
    taken_after: datetime | None = None
    taken_before: datetime | None = None
    camera: str | None = None
    near: Near | None = None
    object: str | None = None  # a label the detector gave one of its objects (or a video frame's), any case

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.kind is not None:
            query = query.where(Media.kind == self.kind)
        if self.label is not None:
            query = query.where(func.lower(Classification.label) == self.label.lower())
        if self.since is not None:
            query = query.where(Media.created_at >= self.since)
        if self.until is not None:
            query = query.where(Media.created_at < self.until)
        if self.object is not None:
            query = query.where(_has_object(self.object))
        return self._apply_photo(query)

    def _apply_photo(self, query: Select[Any]) -> Select[Any]:
        if self.taken_after is not None:
            query = query.where(Media.taken_at >= self.taken_after)
        if self.taken_before is not None:
            query = query.where(Media.taken_at < self.taken_before)
        if self.camera is not None:
            query = query.where(Media.camera.icontains(self.camera, autoescape=True))
        if self.near is not None:
            query = query.where(self.near.clause())
        return query


def _has_object(label: str) -> Any:
    named = func.lower(MediaObject.label) == label.lower()
    own = select(MediaObject.id).where(MediaObject.media_id == Media.id, named)
    in_frames = (select(VideoFrame.id).join(MediaObject, MediaObject.media_id == VideoFrame.frame_media_id)
                 .where(VideoFrame.media_id == Media.id, named))
    return or_(own.exists(), in_frames.exists())
