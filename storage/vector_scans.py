"""The two ways to find a space's nearest vectors among the rows a query selects: its HNSW index (with
pgvector's iterative scan where the extension has it) or an exact scan; and the planner's estimate of
how many rows a query selects, which chooses between them (`storage.search.nearest_images`)."""

from __future__ import annotations

from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import Select, literal_column, text
from sqlalchemy.orm import Session

from storage.models import Classification, ImageEmbedding, Media
from storage.spaces import Space

# pgvector's ceiling for hnsw.ef_search: an HNSW scan hands back at most this many candidates, so a
# ranked list (and a page of it) reaches no deeper.
MAX_RANKED_DEPTH = 1000


def estimated_rows(session: Session, query: Select[Any]) -> float:
    """How many rows the planner expects `query` to have (planning only, nothing is scanned): it picks the
    strategy, and the fall-backs keep the page full when the estimate is off."""
    compiled = query.with_only_columns(literal_column("1")).compile(dialect=session.get_bind().dialect)
    plan: Any = session.connection().exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar()
    return float(plan[0]["Plan"]["Plan Rows"])


def index_scan(session: Session, query: Select[Any], vector: list[float], space: Space, depth: int,
                ef_search: int) -> list[Any]:
    # HNSW returns at most ef_search candidates before filtering: keep it above what the page needs.
    ef = min(max(int(ef_search), depth + 10), MAX_RANKED_DEPTH)
    session.execute(text(f"SET LOCAL hnsw.ef_search = {ef}"))
    iterative = has_iterative_scan(session)
    if iterative:  # pgvector >= 0.8: the scan goes on past ef_search until the filters let `depth` rows through
        session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    # the same expression as the space's index: embedding::vector(dim)
    distance = ImageEmbedding.embedding.cast(Vector(space.dim)).cosine_distance(vector).label("distance")
    rows = list(session.execute(query.with_only_columns(Media, Classification.label, distance)
                                .order_by(distance).limit(depth)).all())
    if iterative:  # relaxed order: nearly sorted; sort it exactly
        rows.sort(key=lambda row: float(row[2]))
    return rows


def exact_scan(session: Session, query: Select[Any], vector: list[float], depth: int) -> list[Any]:
    # the bare column: no index covers it, so every matching row is measured
    distance = ImageEmbedding.embedding.cosine_distance(vector).label("distance")
    return list(session.execute(query.with_only_columns(Media, Classification.label, distance)
                                .order_by(distance).limit(depth)).all())


_ITERATIVE_SCAN: dict[str, bool] = {}


def has_iterative_scan(session: Session) -> bool:
    """Whether the database's pgvector has iterative index scans (0.8.0 and later); asked once per database."""
    url = str(session.get_bind().engine.url)
    if url not in _ITERATIVE_SCAN:
        version = session.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")) or "0"
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        _ITERATIVE_SCAN[url] = parts >= (0, 8)
    return _ITERATIVE_SCAN[url]
