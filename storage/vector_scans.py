"""The two ways to find a space's nearest vectors among the rows a query selects: its HNSW index (with
pgvector's iterative scan where the extension has it) or an exact scan; and the planner's estimate of
how many rows a query selects, which chooses between them (`storage.search.nearest_images`).

Both scans are statements built once per query shape (`NearestQuery`), the vector and the depth bound
at each run: psycopg prepares them on the server after a few runs. They run on the session's Core
connection (their rows are plain columns: the ORM's per-statement work would buy nothing), and the
vector travels in pgvector's binary form, which neither side has to print or parse as decimal text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import Connection, Integer, Select, bindparam, literal_column, text
from sqlalchemy.orm import Session
from sqlalchemy.types import UserDefinedType

from storage.models import ImageEmbedding

# pgvector's ceiling for hnsw.ef_search: an HNSW scan hands back at most this many candidates, so a
# ranked list (and a page of it) reaches no deeper.
MAX_RANKED_DEPTH = 1000


class QueryVector:
    """A query vector on its way to Postgres (see `QueryVectorDumper`)."""

    __slots__ = ("values",)

    def __init__(self, values: list[float]) -> None:
        self.values = values


class QueryVectorDumper(Dumper):
    """pgvector's binary input: dimension and a reserved field (uint16 each), then float4s, big-endian.
    No type oid: the server takes `vector` from the operator the parameter stands beside. The float4 of
    each number is the one the text form (the decimal of the float) gives, for every float32 value (what
    a model answers and what the table stores)."""

    format = Format.BINARY

    def dump(self, obj: QueryVector) -> bytes:
        values = np.asarray(obj.values, dtype=">f4")
        return np.array([values.size, 0], dtype=">u2").tobytes() + values.tobytes()


class BoundQueryVector(UserDefinedType[Any]):
    """The type of the `vector` parameter of the scans: a list of floats, sent as a `QueryVector`."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "VECTOR"

    def bind_processor(self, dialect: Any) -> Any:
        return QueryVector


@dataclass(frozen=True)
class NearestQuery:
    """The statements of one query shape: `matching` (the rows a search may return: media, label), and
    its rows ordered by cosine distance to the `vector` parameter, the `depth` nearest, through the
    space's HNSW index or by an exact scan."""

    matching: Select[Any]
    by_index: Select[Any]
    exact: Select[Any]

    @classmethod
    def of(cls, matching: Select[Any], dim: int) -> NearestQuery:
        vector, depth = bindparam("vector", type_=BoundQueryVector()), bindparam("depth", type_=Integer())
        # the same expression as the space's index: embedding::vector(dim)
        indexed = ImageEmbedding.embedding.cast(Vector(dim)).cosine_distance(vector).label("distance")
        # the bare column: no index covers it, so every matching row is measured
        bare = ImageEmbedding.embedding.cosine_distance(vector).label("distance")
        return cls(matching, matching.add_columns(indexed).order_by(indexed).limit(depth),
                   matching.add_columns(bare).order_by(bare).limit(depth))


def estimated_rows(session: Session, query: Select[Any]) -> float:
    """How many rows the planner expects `query` to have (planning only, nothing is scanned): it picks the
    strategy, and the fall-backs keep the page full when the estimate is off."""
    compiled = query.with_only_columns(literal_column("1")).compile(dialect=session.get_bind().dialect)
    plan: Any = session.connection().exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar()
    return float(plan[0]["Plan"]["Plan Rows"])


def index_scan(session: Session, query: NearestQuery, vector: list[float], depth: int, ef_search: int) -> list[Any]:
    """Rows of `query.matching` with their distance last, nearest first."""
    # HNSW returns at most ef_search candidates before filtering: keep it above what the page needs.
    ef = min(max(int(ef_search), depth + 10), MAX_RANKED_DEPTH)
    connection = session.connection()
    connection.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {ef}")
    iterative = has_iterative_scan(connection)
    if iterative:  # pgvector >= 0.8: the scan goes on past ef_search until the filters let `depth` rows through
        connection.exec_driver_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")
    rows = _run(connection, query.by_index, vector, depth)
    if iterative:  # relaxed order: nearly sorted; sort it exactly
        rows.sort(key=lambda row: float(row[-1]))
    return rows


def exact_scan(session: Session, query: NearestQuery, vector: list[float], depth: int) -> list[Any]:
    """Rows of `query.matching` with their distance last, nearest first."""
    return _run(session.connection(), query.exact, vector, depth)


def _run(connection: Connection, statement: Select[Any], vector: list[float], depth: int) -> list[Any]:
    pooled = connection.connection
    if not pooled.info.get("query_vector_dumper"):  # once per database connection
        pooled.driver_connection.adapters.register_dumper(QueryVector, QueryVectorDumper)  # type: ignore[union-attr]
        pooled.info["query_vector_dumper"] = True
    return list(connection.execute(statement, {"vector": vector, "depth": depth}).all())


_ITERATIVE_SCAN: dict[str, bool] = {}


def has_iterative_scan(connection: Connection) -> bool:
    """Whether the database's pgvector has iterative index scans (0.8.0 and later); asked once per database."""
    url = str(connection.engine.url)
    if url not in _ITERATIVE_SCAN:
        version = connection.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")) or "0"
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        _ITERATIVE_SCAN[url] = parts >= (0, 8)
    return _ITERATIVE_SCAN[url]
