"""Everything known about one media item, for `GET /v1/media/{id}`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.api.schemas import FramePublic, JobPublic, MediaDetail
from shared.http.errors import NotFound
from storage.models import Job, Media, VideoFrame
from storage.runtime import Storage


def media_detail(storage: Storage, media_id: str) -> MediaDetail:
    with storage.db.session() as session:
        media = session.get(Media, media_id)
        if media is None:
            raise NotFound(f"no media with id {media_id}")
        return MediaDetail(
            id=media.id, sha256=media.sha256, kind=media.kind, mime=media.mime, size=media.size,
            original_name=media.original_name, status=media.status, degraded_reasons=media.degraded_reasons,
            parent_id=media.parent_id, created_at=media.created_at, **_results(session, media),
            frames=[FramePublic(t=f.t, media_id=f.frame_media_id) for f in session.scalars(
                select(VideoFrame).where(VideoFrame.media_id == media_id).order_by(VideoFrame.t))],
            jobs=[JobPublic.model_validate(j) for j in session.scalars(
                select(Job).where(Job.media_id == media_id).order_by(Job.created_at))],
        )


def _results(session: Session, media: Media) -> dict[str, Any]:
    c, e, a, t, j = media.classification, media.embedding, media.analysis, media.transcript, media.json_document
    return {
        "classification": c and {"label": c.label, "confidence": c.confidence, "top_k": c.top_k,
                                 "escalated": c.escalated, "trace": c.trace},
        "embedding": e and {"model": e.model, "dim": len(e.embedding)},
        "analysis": a and {"caption": a.caption, "scene": a.scene, "objects": a.objects, "tags": a.tags,
                           "colors": a.colors},
        "transcript": t and {"text": t.text, "language": t.language, "duration_s": t.duration_s,
                             "segments": t.segments},
        "json_document": j and {"document": j.document, "analysis": j.analysis},
    }
