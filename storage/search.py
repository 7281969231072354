"""Search queries: pgvector cosine nearest neighbours (HNSW), Postgres full-text search, filters, and
a text query's lists fused into one ranking (`storage.ranking`).

The functions take a session (tests and callers that tune it); `MediaSearch` runs each in its own one."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Float, Select, column, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from storage import ranking
from storage.db import Database
from storage.models import Classification, ImageAnalysis, ImageEmbedding, Media, Transcript

MatchList = Literal["embedding", "transcript", "caption"]
# pgvector's ceiling for hnsw.ef_search: an HNSW scan hands back at most this many candidates, so a
# ranked list (and a page of it) reaches no deeper.
MAX_RANKED_DEPTH = 1000
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
        # LEAST: rounding can push the haversine a hair above 1, outside asin's domain
        return 2 * EARTH_RADIUS_KM * func.asin(func.sqrt(func.least(haversine, 1.0))) <= self.km


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

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.kind is not None:
            query = query.where(Media.kind == self.kind)
        if self.label is not None:
            query = query.where(func.lower(Classification.label) == self.label.lower())
        if self.since is not None:
            query = query.where(Media.created_at >= self.since)
        if self.until is not None:
            query = query.where(Media.created_at < self.until)
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


@dataclass(frozen=True)
class Hit:
    media: Media
    match: Literal["embedding", "transcript", "caption", "filter"]
    score: float
    label: str | None
    snippet: str | None = None
    similarity: float | None = None
    start_s: float | None = None


def _with_label(*columns: Any) -> Select[Any]:
    return select(Media, Classification.label, *columns).outerjoin(Classification, Classification.media_id == Media.id)


def nearest_images(session: Session, vector: list[float], filters: Filters, *, limit: int, offset: int,
                   ef_search: int, exclude: str | None = None) -> list[Hit]:
    """Images (and video frames) nearest to `vector` by cosine distance, through the HNSW index.

    `kind=video` finds frames of videos (each hit names its video in `parent_id`)."""
    if limit + offset > MAX_RANKED_DEPTH:
        raise ValueError(f"nearest neighbours reach {MAX_RANKED_DEPTH} deep, not {limit + offset}")
    # HNSW returns at most ef_search candidates before filtering: keep it above what the page needs.
    ef = min(max(int(ef_search), limit + offset + 10), MAX_RANKED_DEPTH)
    session.execute(text(f"SET LOCAL hnsw.ef_search = {ef}"))
    distance = ImageEmbedding.embedding.cosine_distance(vector).label("distance")
    query = _with_label(distance).join(ImageEmbedding, ImageEmbedding.media_id == Media.id)
    query = replace(filters, kind=None).apply(query)
    if filters.kind == "image":
        query = query.where(Media.parent_id.is_(None))
    elif filters.kind == "video":
        query = query.where(Media.parent_id.is_not(None))
    elif filters.kind is not None:
        return []
    if exclude is not None:
        query = query.where(Media.id != exclude)
    rows = session.execute(query.order_by(distance).limit(limit).offset(offset)).all()
    return [Hit(row[0], "embedding", 1.0 - float(row[2]), row[1], similarity=1.0 - float(row[2])) for row in rows]


def transcript_matches(session: Session, q: str, filters: Filters, *, limit: int, offset: int) -> list[Hit]:
    """Transcripts matching `q`, each with the start (s) of its segment that matches best (the earliest of equals)."""
    segment = func.jsonb_array_elements(Transcript.segments).table_valued(column("value", JSONB)).alias("segment")
    start = segment.c.value["start"].astext.cast(Float)
    segment_rank = func.ts_rank(func.to_tsvector("simple", segment.c.value["text"].astext),
                                func.websearch_to_tsquery("simple", q))
    best_start = select(start).select_from(segment).order_by(segment_rank.desc(), start).limit(1).scalar_subquery()
    return _text_matches(session, q, filters, "transcript", Transcript, Transcript.text, Transcript.tsv, "simple",
                         limit=limit, offset=offset, extra=best_start)


def caption_matches(session: Session, q: str, filters: Filters, *, limit: int, offset: int) -> list[Hit]:
    return _text_matches(session, q, filters, "caption", ImageAnalysis, ImageAnalysis.caption,
                         ImageAnalysis.caption_tsv, "english", limit=limit, offset=offset)


def _text_matches(
    session: Session, q: str, filters: Filters, match: Literal["transcript", "caption"],
    table: Any, text: Any, tsv: Any, language: str, *, limit: int, offset: int, extra: Any = None,
) -> list[Hit]:
    """Postgres full-text search over one table's text column, ranked, with a highlighted snippet (and
    `extra`, a segment's start, when given)."""
    tsq = func.websearch_to_tsquery(language, q)
    rank = func.ts_rank(tsv, tsq).label("rank")
    snippet = func.ts_headline(language, text, tsq, "MaxFragments=1, MaxWords=20, MinWords=5")
    columns = (rank, snippet) if extra is None else (rank, snippet, extra)
    query = _with_label(*columns).join(table, table.media_id == Media.id).where(tsv.op("@@")(tsq))
    ordered = filters.apply(query).order_by(rank.desc(), Media.id).limit(limit).offset(offset)
    return [Hit(row[0], match, float(row[2]), row[1], row[3], start_s=None if extra is None else row[4])
            for row in session.execute(ordered).all()]


def browse(session: Session, filters: Filters, *, limit: int, offset: int) -> list[Hit]:
    query = filters.apply(_with_label()).where(Media.parent_id.is_(None))
    rows = session.execute(query.order_by(Media.created_at.desc(), Media.id).limit(limit).offset(offset)).all()
    return [Hit(row[0], "filter", 0.0, row[1]) for row in rows]


def stored_embedding(session: Session, media_id: str) -> list[float] | None:
    row = session.scalars(select(ImageEmbedding.embedding).where(ImageEmbedding.media_id == media_id)).first()
    return None if row is None else [float(x) for x in row]


class MediaSearch:
    """The search queries, each in its own read-only unit of work (for routes, which hold no session)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def browse(self, filters: Filters, *, limit: int, offset: int) -> list[Hit]:
        with self.db.session() as session:
            return browse(session, filters, limit=limit, offset=offset)

    def nearest_images(self, vector: list[float], filters: Filters, *, limit: int, offset: int, ef_search: int,
                       exclude: str | None = None) -> list[Hit]:
        with self.db.session() as session:
            return nearest_images(session, vector, filters, limit=limit, offset=offset, ef_search=ef_search,
                                  exclude=exclude)

    def ranked(self, q: str, vector: list[float] | None, filters: Filters, *, limit: int, offset: int,
               ef_search: int, min_similarity: float, weights: ranking.FusionWeights) -> list[Hit]:
        """One page of a text query: nearest images to `vector` (when given) at or above
        `min_similarity`, transcript and caption matches of `q`, fused by reciprocal rank."""
        depth = limit + offset  # each list's top `depth` are fused (deeper ones are left out, as usual for RRF)
        lists: dict[MatchList, list[Hit]] = {}
        with self.db.session() as session:
            if vector is not None:
                nearest = nearest_images(session, vector, filters, limit=depth, offset=0, ef_search=ef_search)
                lists["embedding"] = [hit for hit in nearest if hit.score >= min_similarity]
            lists["transcript"] = transcript_matches(session, q, filters, limit=depth, offset=0)
            lists["caption"] = caption_matches(session, q, filters, limit=depth, offset=0)
        return ranking.fuse(lists, weights)[offset:depth]

    def stored_embedding(self, media_id: str) -> list[float] | None:
        with self.db.session() as session:
            return stored_embedding(session, media_id)
