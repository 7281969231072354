"""Search queries: pgvector cosine nearest neighbours (HNSW), Postgres full-text search, filters, and
a text query's lists fused into one ranking (`storage.ranking`).

The functions take a session (tests and callers that tune it); `MediaSearch` runs each in its own one."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Float, Select, and_, column, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from storage import ranking, spaces
from storage.db import Database
from storage.models import Classification, ImageAnalysis, ImageEmbedding, Media, MediaObject, Transcript, VideoFrame
from storage.spaces import Space, SpaceIdentity
from storage.vector_scans import MAX_RANKED_DEPTH, estimated_rows, exact_scan, index_scan

MatchList = Literal["embedding", "transcript", "caption"]
EARTH_RADIUS_KM = 6371.0088  # the mean radius
# A filter matching fewer items than this is served by an exact scan of those items (a full page, in exact
# order); a broader one by the HNSW index. bench/search_filtered.py measures where the two cross.
EXACT_SCAN_BELOW = 10_000


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


@dataclass(frozen=True)
class Hit:
    media: Media
    match: Literal["embedding", "transcript", "caption", "filter"]
    score: float
    label: str | None
    snippet: str | None = None
    similarity: float | None = None
    start_s: float | None = None


@dataclass(frozen=True)
class SemanticQuery:
    """A query vector and the space of the model that made it (from the embed answer)."""

    vector: list[float]
    identity: SpaceIdentity


@dataclass(frozen=True)
class Page:
    """One page of hits; `space` is the embedding space its image hits come from, `degraded` says why
    that is not the active model's complete space."""

    hits: list[Hit]
    space: Space | None = None
    degraded: list[str] = field(default_factory=list)


def _with_label(*columns: Any) -> Select[Any]:
    return select(Media, Classification.label, *columns).outerjoin(Classification, Classification.media_id == Media.id)


def nearest_images(session: Session, vector: list[float], filters: Filters, *, space: Space, limit: int,
                   offset: int, ef_search: int, exclude: str | None = None) -> list[Hit]:
    """Images (and video frames) of one embedding space nearest to `vector` by cosine distance.

    A full page whenever that many items match the filters: the space's HNSW index serves unfiltered and
    broad queries (with pgvector's iterative scan where the extension has it); a selective filter
    (the planner expects fewer than EXACT_SCAN_BELOW matches) is an exact scan of the matching items. An index scan the
    filters starved is tried again at the widest ef_search, then replaced by the exact scan.
    `kind=video` finds frames of videos (each names its video in `parent_id`)."""
    depth = limit + offset
    if depth > MAX_RANKED_DEPTH:
        raise ValueError(f"nearest neighbours reach {MAX_RANKED_DEPTH} deep, not {depth}")
    if len(vector) != space.dim:
        raise ValueError(f"a {len(vector)}-d query cannot search the {space.dim}-d space {space.id}")
    matching = _matching(filters, space, exclude)
    if matching is None:
        return []
    filtered = _filtered(filters) or exclude is not None
    if _filtered(filters) and estimated_rows(session, matching) < EXACT_SCAN_BELOW:
        rows = exact_scan(session, matching, vector, depth)
    else:
        rows = index_scan(session, matching, vector, space, depth, ef_search)
        if filtered and len(rows) < depth and ef_search < MAX_RANKED_DEPTH:  # the filter starved it: go wider
            rows = index_scan(session, matching, vector, space, depth, MAX_RANKED_DEPTH)
        if filtered and len(rows) < depth:
            rows = exact_scan(session, matching, vector, depth)
    return [Hit(row[0], "embedding", 1.0 - float(row[2]), row[1], similarity=1.0 - float(row[2]))
            for row in rows[offset:]]


def _filtered(filters: Filters) -> bool:
    return any(getattr(filters, f.name) is not None for f in fields(filters))


def _matching(filters: Filters, space: Space, exclude: str | None) -> Select[Any] | None:
    """Media, label and embedding of the space's items that pass the filters (None: no item can)."""
    query = _with_label().join(ImageEmbedding, ImageEmbedding.media_id == Media.id)
    # a literal, not a bound parameter: the planner matches it to the space's partial index
    query = query.where(ImageEmbedding.space_id == literal_column(str(int(space.id))))
    query = replace(filters, kind=None).apply(query)
    if filters.kind == "image":
        query = query.where(Media.parent_id.is_(None))
    elif filters.kind == "video":
        query = query.where(Media.parent_id.is_not(None))
    elif filters.kind is not None:
        return None
    if exclude is not None:
        query = query.where(Media.id != exclude)
    return query


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


def stored_embedding(session: Session, media_id: str, space: Space) -> list[float] | None:
    row = session.scalars(select(ImageEmbedding.embedding).where(ImageEmbedding.media_id == media_id,
                                                                 ImageEmbedding.space_id == space.id)).first()
    return None if row is None else [float(x) for x in row]


class MediaSearch:
    """The search queries, each in its own read-only unit of work (for routes, which hold no session)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def browse(self, filters: Filters, *, limit: int, offset: int) -> list[Hit]:
        with self.db.session() as session:
            return browse(session, filters, limit=limit, offset=offset)

    def similar(self, query: SemanticQuery, filters: Filters, *, limit: int, offset: int, ef_search: int) -> Page:
        """Nearest images to a vector a model just made (an uploaded image's), in that model's space."""
        with self.db.session() as session:
            space, why = spaces.choose(session, spaces.ensure_space(session, query.identity), query_from_current=True)
            assert space is not None
            hits = nearest_images(session, query.vector, filters, space=space, limit=limit, offset=offset,
                                  ef_search=ef_search)
        return Page(hits, space, [why] if why else [])

    def similar_to_stored(self, media_id: str, filters: Filters, *, limit: int, offset: int,
                          ef_search: int) -> Page | None:
        """Nearest images to a stored item's vector, in the active space, or, while that is still filling,
        the previous complete one; None when the item has no vector there."""
        with self.db.session() as session:
            current = spaces.active(session)
            space, why = spaces.choose(session, current, query_from_current=False)
            vector = None if space is None else stored_embedding(session, media_id, space)
            if vector is None and current is not None and space != current:  # an item the old model never saw
                space, why = spaces.choose(session, current, query_from_current=True)
                vector = stored_embedding(session, media_id, current)
            if space is None or vector is None:
                return None
            hits = nearest_images(session, vector, filters, space=space, limit=limit, offset=offset,
                                  ef_search=ef_search, exclude=media_id)
        return Page(hits, space, [why] if why else [])

    def text_matches(self, q: str, filters: Filters, *, depth: int) -> dict[MatchList, list[Hit]]:
        """The top `depth` transcript and caption matches of `q`: the part of a ranked page that needs no
        query vector, so a caller can run it while the vector is being computed."""
        with self.db.session() as session:
            return {"transcript": transcript_matches(session, q, filters, limit=depth, offset=0),
                    "caption": caption_matches(session, q, filters, limit=depth, offset=0)}

    def ranked(self, q: str, query: SemanticQuery | None, filters: Filters, *, limit: int, offset: int,
               ef_search: int, min_similarity: float, weights: ranking.FusionWeights,
               text: dict[MatchList, list[Hit]] | None = None) -> Page:
        """One page of a text query: nearest images to the query's vector (when given) at or above
        `min_similarity`, in its model's space, and transcript and caption matches of `q` (`text`, when
        the caller already has them from `text_matches` at this depth), fused by reciprocal rank."""
        depth = limit + offset  # each list's top `depth` are fused (deeper ones are left out, as usual for RRF)
        lists: dict[MatchList, list[Hit]] = {}
        space, why = None, None
        if query is not None:
            with self.db.session() as session:
                space, why = spaces.choose(session, spaces.ensure_space(session, query.identity),
                                           query_from_current=True)
                assert space is not None
                nearest = nearest_images(session, query.vector, filters, space=space, limit=depth, offset=0,
                                         ef_search=ef_search)
                lists["embedding"] = [hit for hit in nearest if hit.score >= min_similarity]
        lists |= self.text_matches(q, filters, depth=depth) if text is None else text
        return Page(ranking.fuse(lists, weights)[offset:depth], space, [why] if why else [])
