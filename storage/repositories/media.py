"""The media aggregate: media rows, their model results, video frames, and the detail view of one item.

Every result write replaces the previous one, so running a pipeline again (retry, reprocess) never
duplicates results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from shared.exif import PhotoFacts
from shared.schemas.llm import JsonSchemaAnalysis
from shared.schemas.whisper import TranscribeResponse
from storage.db import Database
from storage.models import Classification, ImageAnalysis, Job, JsonDocument, Media, Transcript, VideoFrame
from storage.repositories.image_results import (  # noqa: F401  (FoundObjects, ImageResults: re-exported)
    FoundObjects,
    ImageResults,
    replace_row,
    write_image_results,
    write_outcome,
)
from storage.search import Filters

_RESULTS = (Media.classification, Media.embeddings, Media.analysis, Media.transcript, Media.json_document,
            Media.objects)


class DuplicateMedia(Exception):
    """The same bytes were stored concurrently: the other upload's record stands."""


@dataclass(frozen=True)
class NewMedia:
    sha256: str
    kind: str
    mime: str
    size: int
    path: str
    original_name: str | None = None
    photo: PhotoFacts = field(default_factory=PhotoFacts)


@dataclass(frozen=True)
class MediaRecord:
    """Everything known about one item: the row with its results loaded, its frames and its jobs, in order."""

    media: Media
    frames: list[VideoFrame]
    jobs: list[Job]


@dataclass(frozen=True)
class MediaSummary:
    """One row of the library listing: the item with its label and caption, when it has them."""

    media: Media
    label: str | None
    confidence: float | None
    caption: str | None


@dataclass(frozen=True)
class MediaPage:
    items: list[MediaSummary]
    total: int


class MediaRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, media_id: str) -> Media | None:
        with self.db.session() as session:
            return session.get(Media, media_id)

    def by_sha256(self, sha256: str) -> Media | None:
        with self.db.session() as session:
            return session.scalars(select(Media).where(Media.sha256 == sha256)).first()

    def add_with_ingest_job(self, new: NewMedia, max_attempts: int) -> tuple[Media, Job]:
        """The media row and its first ingest job, in one transaction; DuplicateMedia if the bytes are stored."""
        try:
            with self.db.session() as session:
                media = _media_row(new, status="queued")
                session.add(media)
                session.flush()
                job = Job(kind="ingest", media_id=media.id, max_attempts=max_attempts, params={})
                session.add(job)
        except IntegrityError as exc:
            raise DuplicateMedia(new.sha256) from exc
        return media, job

    def add_frame(self, video_id: str, new: NewMedia) -> str:
        """A video frame's own media record (content-addressed like any upload); the existing one if stored."""
        with self.db.session() as session:
            existing = session.scalars(select(Media.id).where(Media.sha256 == new.sha256)).first()
            if existing is not None:
                return existing
            media = _media_row(new, status="processing", parent_id=video_id)
            session.add(media)
            session.flush()
            return media.id

    def delete(self, media_id: str) -> None:
        """The row and (by cascade) its results and jobs."""
        with self.db.session() as session:
            session.execute(delete(Media).where(Media.id == media_id))

    def remove(self, media_id: str) -> list[str] | None:
        """Delete an item with everything that hangs off it: results, vectors, jobs, cluster memberships
        (all by cascade) and the frames it sampled, except frames another video also sampled (they move to
        that video). None if there is no such item; else the content hashes no record points at any more,
        whose files (and thumbnails) the caller deletes once this has committed."""
        with self.db.session() as session:
            if session.get(Media, media_id, with_for_update=True) is None:
                return None
            shared = session.execute(
                select(VideoFrame.frame_media_id, func.min(VideoFrame.media_id))
                .join(Media, Media.id == VideoFrame.frame_media_id)
                .where(Media.parent_id == media_id, VideoFrame.media_id != media_id)
                .group_by(VideoFrame.frame_media_id)).all()
            for frame_id, other_video in shared:
                session.execute(update(Media).where(Media.id == frame_id).values(parent_id=other_video))
            doomed = session.execute(select(Media.id, Media.sha256)
                                     .where((Media.id == media_id) | (Media.parent_id == media_id))).all()
            session.execute(delete(Media).where(Media.id.in_([row.id for row in doomed])))
            hashes = {row.sha256 for row in doomed}
            still_used = set(session.scalars(select(Media.sha256).where(Media.sha256.in_(hashes))))
            return sorted(hashes - still_used)

    def set_outcome(self, media_id: str, reasons: list[str]) -> None:
        with self.db.session() as session:
            write_outcome(session, media_id, reasons)

    def record(self, media_id: str) -> MediaRecord | None:
        with self.db.session() as session:
            media = session.get(Media, media_id, options=[selectinload(r) for r in _RESULTS])
            if media is None:
                return None
            frames = session.scalars(select(VideoFrame).where(VideoFrame.media_id == media_id)
                                     .order_by(VideoFrame.t)).all()
            jobs = session.scalars(select(Job).where(Job.media_id == media_id).order_by(Job.created_at)).all()
            return MediaRecord(media, list(frames), list(jobs))

    def page(self, filters: Filters, *, limit: int, offset: int) -> MediaPage:
        """Uploaded items (not video frames), newest first, filtered, one page of them and how many match."""
        columns: tuple[Any, ...] = (Media, Classification.label, Classification.confidence, ImageAnalysis.caption)
        query = filters.apply(
            select(*columns)
            .outerjoin(Classification, Classification.media_id == Media.id)
            .outerjoin(ImageAnalysis, ImageAnalysis.media_id == Media.id)
            .where(Media.parent_id.is_(None)))
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.execute(query.order_by(Media.created_at.desc(), Media.id).limit(limit).offset(offset))
            return MediaPage([MediaSummary(*row) for row in rows], total)

    def poster(self, media: Media) -> Media | None:
        """The image that stands for an item: itself for an image, a video's first sampled frame, else None."""
        if media.kind == "image":
            return media
        if media.kind != "video":
            return None
        with self.db.session() as session:
            return session.scalars(select(Media).join(VideoFrame, VideoFrame.frame_media_id == Media.id)
                                   .where(VideoFrame.media_id == media.id).order_by(VideoFrame.t).limit(1)).first()

    def sha256s(self, media_ids: Sequence[str]) -> list[str]:
        """The content hashes of these items, in the order asked (unknown ids are left out)."""
        with self.db.session() as session:
            rows = session.execute(select(Media.id, Media.sha256).where(Media.id.in_(media_ids)))
            found = {media_id: sha256 for media_id, sha256 in rows}
        return [found[media_id] for media_id in media_ids if media_id in found]

    def captions(self, media_ids: Sequence[str]) -> list[str]:
        with self.db.session() as session:
            rows = session.scalars(select(ImageAnalysis.caption).where(ImageAnalysis.media_id.in_(media_ids)))
            return [caption for caption in rows if caption]

    def save_image_results(self, media_id: str, results: ImageResults) -> None:
        with self.db.session() as session:
            write_image_results(session, media_id, results)

    def save_transcript(self, media_id: str, answer: TranscribeResponse) -> None:
        segments = [{"start": s.start, "end": s.end, "text": s.text} for s in answer.segments]
        with self.db.session() as session:
            replace_row(session, Transcript, media_id, Transcript(
                media_id=media_id, text=answer.text, language=answer.language, duration_s=answer.duration_s,
                segments=segments))

    def save_json_document(self, media_id: str, document: Any, analysis: JsonSchemaAnalysis | None) -> None:
        """The document always; its analysis when there is one, else the last good analysis is kept."""
        stored = None if analysis is None else analysis.model_dump(mode="json")
        with self.db.session() as session:
            if stored is None:
                stored = session.scalars(select(JsonDocument.analysis)
                                         .where(JsonDocument.media_id == media_id)).first()
            replace_row(session, JsonDocument, media_id,
                     JsonDocument(media_id=media_id, document=document, analysis=stored))

    def save_frames(self, media_id: str, frames: list[tuple[float, str]]) -> None:
        """A video's frames: (seconds from the start, the frame's media id)."""
        with self.db.session() as session:
            session.execute(delete(VideoFrame).where(VideoFrame.media_id == media_id))
            session.add_all(VideoFrame(media_id=media_id, t=t, frame_media_id=frame_id) for t, frame_id in frames)


def _media_row(new: NewMedia, *, status: str, parent_id: str | None = None) -> Media:
    return Media(sha256=new.sha256, kind=new.kind, mime=new.mime, size=new.size, path=new.path,
                 original_name=new.original_name, status=status, parent_id=parent_id, degraded_reasons=[],
                 taken_at=new.photo.taken_at, camera=new.photo.camera, latitude=new.photo.latitude,
                 longitude=new.photo.longitude)
