"""An image's stored results (classification, embedding, BLIP-2 analysis, objects) and its outcome, written
inside a caller's transaction: the worker writes them in the one that marks the job done.

Every write replaces the previous result, so running a pipeline again never duplicates results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from shared.schemas.blip2 import AnalyzeImageResponse
from shared.schemas.gateway import ClassifyResponse, ObjectAnswer
from storage import spaces
from storage.models import Classification, ImageAnalysis, ImageEmbedding, Media, MediaObject
from storage.spaces import Space, SpaceIdentity


@dataclass(frozen=True)
class FoundObjects:
    """The detector's objects in one image (an empty list: it found none), with the crops' embeddings
    (one per object, None where not computed) when the pipeline made them."""

    detector: str
    objects: list[ObjectAnswer]
    embeddings: list[list[float] | None] = field(default_factory=list)
    embedding_model: str | None = None


@dataclass(frozen=True)
class ImageResults:
    """What the image stages computed; a stage that failed is None and its stored result is left alone."""

    classification: ClassifyResponse | None = None
    embedding: tuple[SpaceIdentity, list[float]] | None = None
    analysis: AnalyzeImageResponse | None = None
    objects: FoundObjects | None = None


def write_image_results(session: Session, media_id: str, results: ImageResults) -> None:
    if results.classification is not None:
        replace_row(session, Classification, media_id, _classification_row(media_id, results.classification))
    if results.embedding is not None:
        identity, vector = results.embedding
        save_embedding(session, media_id, spaces.ensure_space(session, identity), vector)
    if results.analysis is not None:
        replace_row(session, ImageAnalysis, media_id, _analysis_row(media_id, results.analysis))
    if results.objects is not None:
        session.execute(delete(MediaObject).where(MediaObject.media_id == media_id))
        session.add_all(_object_rows(media_id, results.objects))


def write_outcome(session: Session, media_id: str, reasons: list[str]) -> None:
    """The item is ready, or degraded with the reasons (each names the service and why)."""
    session.execute(update(Media).where(Media.id == media_id)
                    .values(status="degraded" if reasons else "ready", degraded_reasons=reasons))


def save_embedding(session: Session, media_id: str, space: Space, vector: list[float]) -> None:
    """The item's vector in this space (its vectors in other spaces stay until a re-embed has replaced them)."""
    session.execute(delete(ImageEmbedding).where(ImageEmbedding.media_id == media_id,
                                                 ImageEmbedding.space_id == space.id))
    session.add(ImageEmbedding(media_id=media_id, space_id=space.id, model=space.identity.model, embedding=vector))


def replace_row(session: Session, model: Any, media_id: str, row: Any) -> None:
    """The item's one row of `model` replaced by `row`."""
    session.execute(delete(model).where(model.media_id == media_id))
    session.add(row)


def _classification_row(media_id: str, answer: ClassifyResponse) -> Classification:
    stages = answer.trace.stages
    escalated = len(stages) > 1 or any(stage.decision == "escalate" for stage in stages)
    return Classification(media_id=media_id, label=answer.label, confidence=answer.confidence,
                          top_k=[score.model_dump(mode="json") for score in answer.top_k],
                          trace=answer.trace.model_dump(mode="json"), escalated=escalated)


def _object_rows(media_id: str, found: FoundObjects) -> list[MediaObject]:
    embeddings = found.embeddings or [None] * len(found.objects)
    return [MediaObject(media_id=media_id, label=obj.label, score=obj.score, box=obj.box.model_dump(),
                        box_normalized=obj.box_normalized.model_dump(), detector=found.detector,
                        classification=obj.classification and obj.classification.model_dump(mode="json"),
                        embedding=vector, embedding_model=found.embedding_model if vector is not None else None)
            for obj, vector in zip(found.objects, embeddings, strict=True)]


def _analysis_row(media_id: str, answer: AnalyzeImageResponse) -> ImageAnalysis:
    objects = [obj.model_dump(mode="json") for obj in answer.objects]
    return ImageAnalysis(media_id=media_id, caption=answer.caption, scene=answer.scene_type, objects=objects,
                         tags=sorted({obj.name for obj in answer.objects if obj.name}),
                         colors=answer.dominant_colors)
