"""Writes and reads of pipeline results. Each `save_*` replaces that table's row for the media item,
so re-running a pipeline (retry, reprocess) never duplicates results."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.models import (
    Classification,
    ImageAnalysis,
    ImageEmbedding,
    JsonDocument,
    Media,
    Transcript,
    VideoFrame,
)


def media_by_sha(session: Session, sha256: str) -> Media | None:
    return session.scalars(select(Media).where(Media.sha256 == sha256)).first()


def _replace(session: Session, model: Any, media_id: str, row: Any) -> None:
    session.execute(delete(model).where(model.media_id == media_id))
    session.add(row)


def save_classification(session: Session, media_id: str, answer: dict[str, Any]) -> None:
    trace = answer.get("trace") or {}
    stages = trace.get("stages") or []
    escalated = len(stages) > 1 or any(s.get("decision") == "escalate" for s in stages)
    _replace(session, Classification, media_id, Classification(
        media_id=media_id, label=answer["label"], confidence=float(answer["confidence"]),
        top_k=answer.get("top_k", []), trace=trace, escalated=escalated))


def save_embedding(session: Session, media_id: str, model: str, vector: list[float]) -> None:
    _replace(session, ImageEmbedding, media_id, ImageEmbedding(media_id=media_id, model=model, embedding=vector))


def save_analysis(session: Session, media_id: str, answer: dict[str, Any]) -> None:
    objects = answer.get("objects") or []
    tags = sorted({o["name"] for o in objects if isinstance(o, dict) and o.get("name")})
    _replace(session, ImageAnalysis, media_id, ImageAnalysis(
        media_id=media_id, caption=answer.get("caption"), scene=answer.get("scene_type"), objects=objects,
        tags=tags, colors=answer.get("dominant_colors") or []))


def save_transcript(session: Session, media_id: str, answer: dict[str, Any]) -> None:
    segments = [{"start": s["start"], "end": s["end"], "text": s["text"]} for s in answer.get("segments", [])]
    _replace(session, Transcript, media_id, Transcript(
        media_id=media_id, text=answer.get("text", ""), language=answer.get("language"),
        duration_s=answer.get("duration_s"), segments=segments))


def save_json_document(session: Session, media_id: str, document: Any, analysis: dict[str, Any] | None) -> None:
    existing = session.scalars(select(JsonDocument).where(JsonDocument.media_id == media_id)).first()
    if existing is not None and analysis is None:
        analysis = existing.analysis  # a degraded re-run keeps the last good analysis
    _replace(session, JsonDocument, media_id, JsonDocument(media_id=media_id, document=document, analysis=analysis))


def save_frames(session: Session, media_id: str, frames: list[tuple[float, str]]) -> None:
    session.execute(delete(VideoFrame).where(VideoFrame.media_id == media_id))
    session.add_all(VideoFrame(media_id=media_id, t=t, frame_media_id=frame_id) for t, frame_id in frames)


def set_outcome(session: Session, media_id: str, reasons: list[str]) -> None:
    media = session.get(Media, media_id)
    if media is not None:
        media.status = "degraded" if reasons else "ready"
        media.degraded_reasons = reasons
