"""Search queries: pgvector cosine nearest neighbours (HNSW), Postgres full-text search, filters
(`storage.search_filters`), and a text query's lists fused into one ranking (`storage.ranking`).

The functions take a session (tests and callers that tune it); `MediaSearch` runs each in its own one."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import Float, Integer, Select, String, bindparam, column, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from storage import ranking, spaces
from storage.db import Database
from storage.models import Classification, ImageAnalysis, ImageEmbedding, Media, Transcript
from storage.search_filters import Filters as Filters  # the routes and the library listing take them from here
from storage.search_filters import Near as Near
from storage.spaces import CompleteSpaces, Space, SpaceIdentity
from storage.vector_scans import MAX_RANKED_DEPTH, NearestQuery, estimated_rows, exact_scan, index_scan

MatchList = Literal["embedding", "transcript", "caption"]
# A filter matching fewer items than this is served by an exact scan of those items (a full page, in exact
# order); a broader one by the HNSW index. bench/search_filtered.py measures where the two cross.
EXACT_SCAN_BELOW = 10_000


@dataclass(frozen=True, slots=True)
class MediaCard:
    """What a hit shows of its item (read as plain columns: no ORM object per row)."""

    id: str
    kind: str
    mime: str
    created_at: datetime
    parent_id: str | None
    taken_at: datetime | None
    camera: str | None


CARD_COLUMNS = (Media.id, Media.kind, Media.mime, Media.created_at, Media.parent_id, Media.taken_at, Media.camera)
LABEL = len(CARD_COLUMNS)  # where a row's label is: after the card's columns, before a query's own


def _card(row: Any) -> MediaCard:
    return MediaCard(*row[:LABEL])


@dataclass(frozen=True)
class Hit:
    media: MediaCard
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
    """Plain columns: the session's Core connection runs these queries (the ORM's per-statement work buys
    nothing without ORM objects)."""
    return (select(*CARD_COLUMNS, Classification.label, *columns)
            .outerjoin(Classification, Classification.media_id == Media.id))


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
    nearest = nearest_query(filters, space, exclude)
    if nearest is None:
        return []
    filtered = _filtered(filters) or exclude is not None
    if _filtered(filters) and estimated_rows(session, nearest.matching) < EXACT_SCAN_BELOW:
        rows = exact_scan(session, nearest, vector, depth)
    else:
        rows = index_scan(session, nearest, vector, depth, ef_search)
        if filtered and len(rows) < depth and ef_search < MAX_RANKED_DEPTH:  # the filter starved it: go wider
            rows = index_scan(session, nearest, vector, depth, MAX_RANKED_DEPTH)
        if filtered and len(rows) < depth:
            rows = exact_scan(session, nearest, vector, depth)
    return [Hit(_card(row), "embedding", 1.0 - float(row[-1]), row[LABEL], similarity=1.0 - float(row[-1]))
            for row in rows[offset:]]


def _filtered(filters: Filters) -> bool:
    return any(getattr(filters, f.name) is not None for f in fields(filters))


@lru_cache(maxsize=256)
def nearest_query(filters: Filters, space: Space, exclude: str | None) -> NearestQuery | None:
    """The nearest-neighbour statements of the space's items that pass the filters (None: no item can),
    built once and reused by every search with the same filters, space and exclusion."""
    matching = _matching(filters, space, exclude)
    return None if matching is None else NearestQuery.of(matching, space.dim)


def _matching(filters: Filters, space: Space, exclude: str | None) -> Select[Any] | None:
    """Media card and label of the space's items that pass the filters (None: no item can)."""
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
    return _text_hits(session, _transcript_query(filters), "transcript", q, limit=limit, offset=offset)


def caption_matches(session: Session, q: str, filters: Filters, *, limit: int, offset: int) -> list[Hit]:
    return _text_hits(session, _caption_query(filters), "caption", q, limit=limit, offset=offset)


# the full-text statements are built once per filters and run with these bound
_WORDS = bindparam("q", type_=String())
_LIMIT = bindparam("limit", type_=Integer())
_OFFSET = bindparam("offset", type_=Integer())


@lru_cache(maxsize=128)
def _transcript_query(filters: Filters) -> Select[Any]:
    segment = func.jsonb_array_elements(Transcript.segments).table_valued(column("value", JSONB)).alias("segment")
    start = segment.c.value["start"].astext.cast(Float)
    segment_rank = func.ts_rank(func.to_tsvector("simple", segment.c.value["text"].astext),
                                func.websearch_to_tsquery("simple", _WORDS))
    best_start = select(start).select_from(segment).order_by(segment_rank.desc(), start).limit(1).scalar_subquery()
    return _full_text(filters, Transcript, Transcript.text, Transcript.tsv, "simple", extra=best_start)


@lru_cache(maxsize=128)
def _caption_query(filters: Filters) -> Select[Any]:
    return _full_text(filters, ImageAnalysis, ImageAnalysis.caption, ImageAnalysis.caption_tsv, "english")


def _full_text(filters: Filters, table: Any, text: Any, tsv: Any, language: str, extra: Any = None) -> Select[Any]:
    """Postgres full-text search over one table's text column, ranked, with a highlighted snippet (and
    `extra`, a segment's start, when given)."""
    tsq = func.websearch_to_tsquery(language, _WORDS)
    rank = func.ts_rank(tsv, tsq).label("rank")
    snippet = func.ts_headline(language, text, tsq, "MaxFragments=1, MaxWords=20, MinWords=5")
    columns = (rank, snippet) if extra is None else (rank, snippet, extra)
    query = _with_label(*columns).join(table, table.media_id == Media.id).where(tsv.op("@@")(tsq))
    return filters.apply(query).order_by(rank.desc(), Media.id).limit(_LIMIT).offset(_OFFSET)


def _text_hits(session: Session, query: Select[Any], match: Literal["transcript", "caption"], q: str, *,
               limit: int, offset: int) -> list[Hit]:
    rows = session.connection().execute(query, {"q": q, "limit": limit, "offset": offset}).all()
    return [Hit(_card(row), match, float(row[LABEL + 1]), row[LABEL], row[LABEL + 2],
                start_s=row[LABEL + 3] if len(row) > LABEL + 3 else None)
            for row in rows]


def browse(session: Session, filters: Filters, *, limit: int, offset: int) -> list[Hit]:
    query = filters.apply(_with_label()).where(Media.parent_id.is_(None))
    ordered = query.order_by(Media.created_at.desc(), Media.id).limit(limit).offset(offset)
    rows = session.connection().execute(ordered).all()
    return [Hit(_card(row), "filter", 0.0, row[LABEL]) for row in rows]


def stored_embedding(session: Session, media_id: str, space: Space) -> list[float] | None:
    row = session.scalars(select(ImageEmbedding.embedding).where(ImageEmbedding.media_id == media_id,
                                                                 ImageEmbedding.space_id == space.id)).first()
    return None if row is None else [float(x) for x in row]


class MediaSearch:
    """The search queries, each in its own read-only unit of work (for routes, which hold no session)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.complete_spaces = CompleteSpaces()

    def browse(self, filters: Filters, *, limit: int, offset: int) -> list[Hit]:
        with self.db.session() as session:
            return browse(session, filters, limit=limit, offset=offset)

    def similar(self, query: SemanticQuery, filters: Filters, *, limit: int, offset: int, ef_search: int) -> Page:
        """Nearest images to a vector a model just made (an uploaded image's), in that model's space."""
        with self.db.session() as session:
            space, why = spaces.choose(session, self.complete_spaces.ensure(session, query.identity),
                                       query_from_current=True)
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
                space, why = spaces.choose(session, self.complete_spaces.ensure(session, query.identity),
                                           query_from_current=True)
                assert space is not None
                nearest = nearest_images(session, query.vector, filters, space=space, limit=depth, offset=0,
                                         ef_search=ef_search)
                lists["embedding"] = [hit for hit in nearest if hit.score >= min_similarity]
        lists |= self.text_matches(q, filters, depth=depth) if text is None else text
        return Page(ranking.fuse(lists, weights)[offset:depth], space, [why] if why else [])
