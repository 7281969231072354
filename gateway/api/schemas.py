"""Shapes of the storage API: uploads, jobs, media items, search results, clusters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from storage.models import Media
from storage.repositories.clusters import ClusterView
from storage.repositories.media import MediaPage, MediaRecord

JobState = Literal["queued", "running", "retrying", "done", "failed", "cancelled"]  # storage.models.JOB_STATES
JobKind = Literal["ingest", "cluster", "reembed"]


class UploadAccepted(BaseModel):
    job_id: str | None = Field(description="The ingest job (the existing one for a duplicate).")
    media_id: str
    sha256: str
    kind: str
    mime: str
    size: int
    duplicate: bool = Field(description="The same bytes were already stored: nothing new was created.")
    status: str


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    media_id: str | None
    state: JobState
    progress: float = Field(ge=0, le=1)
    stage: str | None
    attempts: int
    max_attempts: int
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class JobList(BaseModel):
    items: list[JobPublic]
    total: int = Field(description="How many jobs match the filters, over all pages.")
    limit: int
    offset: int


class FramePublic(BaseModel):
    t: float = Field(description="Seconds from the start of the video.")
    media_id: str


class MediaDetail(BaseModel):
    id: str
    sha256: str
    kind: str
    mime: str
    size: int
    original_name: str | None
    status: str
    degraded_reasons: list[str]
    parent_id: str | None
    created_at: datetime
    classification: dict[str, Any] | None = None
    embedding: dict[str, Any] | None = Field(default=None, description="Model and dimension (not the vector).")
    analysis: dict[str, Any] | None = None
    transcript: dict[str, Any] | None = None
    json_document: dict[str, Any] | None = None
    objects: list[dict[str, Any]] = Field(
        default_factory=list, description="What the detector found: label, score, box (pixels), box_normalized, "
        "the crop's classification; highest score first.")
    frames: list[FramePublic] = Field(default_factory=list)
    jobs: list[JobPublic] = Field(default_factory=list)

    @classmethod
    def from_record(cls, record: MediaRecord) -> MediaDetail:
        media = record.media
        return cls(
            id=media.id, sha256=media.sha256, kind=media.kind, mime=media.mime, size=media.size,
            original_name=media.original_name, status=media.status, degraded_reasons=media.degraded_reasons,
            parent_id=media.parent_id, created_at=media.created_at, **_results(media),
            frames=[FramePublic(t=f.t, media_id=f.frame_media_id) for f in record.frames],
            jobs=[JobPublic.model_validate(job) for job in record.jobs],
        )


def _results(media: Media) -> dict[str, Any]:
    c, a, t, j = media.classification, media.analysis, media.transcript, media.json_document
    e = media.embeddings[0] if media.embeddings else None  # the newest
    return {
        "classification": c and {"label": c.label, "confidence": c.confidence, "top_k": c.top_k,
                                 "escalated": c.escalated, "trace": c.trace},
        "embedding": e and {"model": e.model, "dim": len(e.embedding)},
        "analysis": a and {"caption": a.caption, "scene": a.scene, "objects": a.objects, "tags": a.tags,
                           "colors": a.colors},
        "transcript": t and {"text": t.text, "language": t.language, "duration_s": t.duration_s,
                             "segments": t.segments},
        "json_document": j and {"document": j.document, "analysis": j.analysis},
        "objects": [{"label": o.label, "score": o.score, "box": o.box, "box_normalized": o.box_normalized,
                     "classification": o.classification, "detector": o.detector,
                     "embedding_model": o.embedding_model} for o in media.objects],
    }


class MediaListItem(BaseModel):
    id: str
    kind: str
    mime: str
    size: int
    original_name: str | None
    status: str
    created_at: datetime
    label: str | None = None
    confidence: float | None = None
    caption: str | None = None
    taken_at: datetime | None = Field(default=None, description="Capture time from the photo's EXIF.")
    camera: str | None = Field(default=None, description="\"Make Model\" from the photo's EXIF.")


class MediaList(BaseModel):
    items: list[MediaListItem]
    total: int = Field(description="How many items match the filters, over all pages.")
    limit: int
    offset: int

    @classmethod
    def from_page(cls, page: MediaPage, *, limit: int, offset: int) -> MediaList:
        items = [MediaListItem(id=s.media.id, kind=s.media.kind, mime=s.media.mime, size=s.media.size,
                               original_name=s.media.original_name, status=s.media.status,
                               created_at=s.media.created_at, label=s.label, confidence=s.confidence,
                               caption=s.caption, taken_at=s.media.taken_at, camera=s.media.camera)
                 for s in page.items]
        return cls(items=items, total=page.total, limit=limit, offset=offset)


class SearchHit(BaseModel):
    media_id: str
    kind: str
    mime: str
    created_at: datetime
    match: Literal["embedding", "transcript", "caption", "filter"] = Field(
        description="The list that ranked it highest: nearest images, transcripts, captions (or `filter`: no query).")
    score: float = Field(description="Results come in its order. A text query: the fused score, Σ weight / "
                         "(k + rank) over the lists that hold it (reciprocal-rank fusion); similar images: the "
                         "cosine similarity; browsing: 0.")
    similarity: float | None = Field(default=None, description="Cosine similarity of the image to the query.")
    label: str | None = None
    snippet: str | None = None
    start_s: float | None = Field(default=None, description="For a transcript match: where the segment that "
                                  "matches best starts, in seconds.")
    parent_id: str | None = Field(default=None, description="For a video frame: the video it came from.")
    taken_at: datetime | None = Field(default=None, description="A photo's capture time, from its EXIF.")
    camera: str | None = Field(default=None, description="A photo's camera (\"Make Model\"), from its EXIF.")


class EmbeddingSpacePublic(BaseModel):
    """The vectors of one model: search compares a query only with vectors of its own space."""

    id: int
    model: str
    weights_sha256: str = Field(description="SHA-256 over the model's weight files (`unknown` when the "
                                "service did not say; `legacy` for vectors stored before spaces existed).")
    dim: int
    state: Literal["filling", "complete"] = Field(description="`filling` while a re-embed backfills it.")


class SearchResponse(BaseModel):
    query: str | None
    results: list[SearchHit]
    limit: int
    offset: int
    space: EmbeddingSpacePublic | None = Field(default=None, description="The embedding space the image hits "
                                               "come from (none when no image search ran).")
    min_similarity: float | None = Field(default=None, description="Image hits of this query below this cosine "
                                         "similarity were dropped (none when no image search ran).")
    degraded: list[str] = Field(default_factory=list, description="Parts of the search that could not run, and why.")


class ClusterRequest(BaseModel):
    k: int | None = Field(default=None, ge=2, le=500, description="Number of clusters; default sqrt(n/2).")
    method: Literal["kmeans", "agglomerative"] = "kmeans"
    include_frames: bool = Field(default=False, description="Also cluster frames sampled from videos.")


class ClusterPublic(BaseModel):
    id: int
    run_id: str
    name: str
    description: str | None
    tags: list[Any]
    category: str | None
    confidence: float | None
    enrichment: dict[str, Any] | None
    size: int
    degraded_reasons: list[Any]
    representatives: list[str]
    members: list[str]
    created_at: datetime

    @classmethod
    def from_view(cls, view: ClusterView) -> ClusterPublic:
        c = view.cluster
        return cls(id=c.id, run_id=c.run_id, name=c.name, description=c.description, tags=c.tags,
                   category=c.category, confidence=c.confidence, enrichment=c.enrichment, size=c.size,
                   degraded_reasons=c.degraded_reasons, representatives=view.representatives, members=view.members,
                   created_at=c.created_at)
