"""The schema as SQLAlchemy 2 models. Changes go through Alembic (migrations/), never `create_all`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

EMBEDDING_DIM = 512  # CLIP ViT-B/32's; a space's dimension follows its model (EmbeddingSpace.dim)
MEDIA_KINDS = ("image", "audio", "video", "json")
MEDIA_STATES = ("queued", "processing", "ready", "degraded", "failed")
JOB_STATES = ("queued", "running", "retrying", "done", "failed", "cancelled")


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONB, list[Any]: JSONB}


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _media_fk(unique: bool = False) -> Mapped[str]:
    return mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=not unique, unique=unique)


class Media(Base):
    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    mime: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text, doc="Relative to the media store root; derived from sha256.")
    original_name: Mapped[str | None] = mapped_column(Text, doc="Shown only; never used as a path.")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    degraded_reasons: Mapped[list[Any]] = mapped_column(default=list)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    # From the photo's EXIF (shared/exif.py), at upload; None when it does not say.
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    camera: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )

    classification: Mapped[Classification | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    # one per embedding space, newest first
    embeddings: Mapped[list[ImageEmbedding]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="ImageEmbedding.created_at.desc()")
    analysis: Mapped[ImageAnalysis | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    transcript: Mapped[Transcript | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    json_document: Mapped[JsonDocument | None] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    # what the detector found in the image, highest score first
    objects: Mapped[list[MediaObject]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="MediaObject.score.desc()")


class Classification(Base):
    __tablename__ = "classifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[str] = _media_fk(unique=True)
    label: Mapped[str | None] = mapped_column(Text, index=True)  # None: the cascade sent it to review
    confidence: Mapped[float] = mapped_column(Float)
    top_k: Mapped[list[Any]] = mapped_column(default=list)
    trace: Mapped[dict[str, Any]] = mapped_column(default=dict)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _created()

    # search's label filter compares lower(label)
    __table_args__ = (Index("ix_classifications_label_lower", func.lower(label)),)


class EmbeddingSpace(Base):
    """Vectors of one model: its id, a hash of its weights and its dimension (`storage.spaces`).
    `filling` while a re-embed backfills it; `complete` once every embedded item has a vector in it."""

    __tablename__ = "embedding_spaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(Text)
    dim: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="filling")
    created_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("model", "weights_sha256", "dim", name="uq_embedding_spaces_identity"),)


class ImageEmbedding(Base):
    """One item's vector in one space. The column has no fixed dimension; each space has its own partial
    HNSW index over `embedding::vector(dim)` (created with the space, `storage.spaces`)."""

    __tablename__ = "image_embeddings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    space_id: Mapped[int] = mapped_column(ForeignKey("embedding_spaces.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(Text)
    embedding: Mapped[Any] = mapped_column(Vector())
    created_at: Mapped[datetime] = _created()

    __table_args__ = (UniqueConstraint("media_id", "space_id", name="uq_image_embeddings_media_space"),)


class MediaObject(Base):
    """One object the detector found in an image: its box, label and score, the per-object
    classification of its crop (the cascade's detection stage) and optionally its crop's embedding."""

    __tablename__ = "objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[str] = _media_fk()
    label: Mapped[str] = mapped_column(Text, doc="Indexed as lower(label) for `?object=` (migration 0006).")
    score: Mapped[float] = mapped_column(Float)
    box: Mapped[dict[str, Any]] = mapped_column(doc="Pixels: x0, y0, x1, y1.")
    box_normalized: Mapped[dict[str, Any]] = mapped_column(doc="The same box as fractions of the image (0-1).")
    detector: Mapped[str] = mapped_column(Text, doc="The detector model that found it.")
    classification: Mapped[dict[str, Any] | None] = mapped_column(JSONB, doc="label, confidence, top_k of the crop.")
    embedding: Mapped[Any | None] = mapped_column(Vector(), doc="The crop's image embedding, when computed.")
    embedding_model: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class ImageAnalysis(Base):
    __tablename__ = "image_analyses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[str] = _media_fk(unique=True)
    caption: Mapped[str | None] = mapped_column(Text)
    scene: Mapped[str | None] = mapped_column(Text)
    objects: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    colors: Mapped[list[Any]] = mapped_column(default=list)
    caption_tsv: Mapped[Any] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english', coalesce(caption, '') || ' ' || coalesce(scene, ''))")
    )
    created_at: Mapped[datetime] = _created()

    __table_args__ = (Index("ix_image_analyses_caption_tsv", "caption_tsv", postgresql_using="gin"),)


class Transcript(Base):
    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[str] = _media_fk(unique=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    duration_s: Mapped[float | None] = mapped_column(Float)
    segments: Mapped[list[Any]] = mapped_column(default=list)
    tsv: Mapped[Any] = mapped_column(TSVECTOR, Computed("to_tsvector('simple', coalesce(text, ''))"))
    created_at: Mapped[datetime] = _created()

    __table_args__ = (Index("ix_transcripts_tsv", "tsv", postgresql_using="gin"),)


class VideoFrame(Base):
    __tablename__ = "video_frames"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[str] = _media_fk()
    t: Mapped[float] = mapped_column(Float, doc="Seconds from the start of the video.")
    frame_media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))


class JsonDocument(Base):
    __tablename__ = "json_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[str] = _media_fk(unique=True)
    document: Mapped[Any] = mapped_column(JSONB)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()


class Cluster(Base):
    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    category: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    enrichment: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    size: Mapped[int] = mapped_column(Integer)
    degraded_reasons: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = _created()


class ClusterMember(Base):
    __tablename__ = "cluster_members"

    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), primary_key=True)
    distance: Mapped[float] = mapped_column(Float)
    representative: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16), doc="ingest | cluster")
    media_id: Mapped[str | None] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=4)
    error: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class ClassifyResult(Base):
    """One `POST /v1/classify` answer (mode=auto), and the true label once feedback gave it."""

    __tablename__ = "classify_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(Text, index=True)
    variant: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str | None] = mapped_column(Text, doc="None when the decision was review.")
    confidence: Mapped[float] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(16), doc="answer | review")
    stage_calls: Mapped[int] = mapped_column(Integer)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    total_ms: Mapped[float] = mapped_column(Float)
    trace: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="Summary: stages, decisions, rule.")
    truth: Mapped[str | None] = mapped_column(Text, doc="The true label, from feedback.")
    feedback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
