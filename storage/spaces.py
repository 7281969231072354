"""Embedding spaces: the vectors of one model (its id, a hash of its weights, its dimension).

Vectors of two spaces are never compared: search reads one space at a time. The *active* space is the
one the clip service's current model embeds into (each embed answer names it); it is registered here
the first time it is seen, with its own partial HNSW index. A space is `complete` once every embedded
item has a vector in it: at once when nothing was embedded before, else when a re-embed
(`mediamesh reembed`) has filled it. Until then search answers from the newest complete space.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models import EmbeddingSpace, ImageEmbedding, Media

UNKNOWN_WEIGHTS = "unknown"  # a clip service that does not report a weights hash


@dataclass(frozen=True)
class SpaceIdentity:
    """What an embed answer says about its vectors."""

    model: str
    weights_sha256: str
    dim: int

    @classmethod
    def of(cls, model: str, dim: int, weights_sha256: str | None) -> SpaceIdentity:
        return cls(model, weights_sha256 or UNKNOWN_WEIGHTS, dim)

    def describe(self) -> str:
        return f"{self.model} ({self.dim}-d, weights {self.weights_sha256[:12]})"


@dataclass(frozen=True)
class Space:
    id: int
    identity: SpaceIdentity
    state: str

    @property
    def dim(self) -> int:
        return self.identity.dim

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    @classmethod
    def of(cls, row: EmbeddingSpace) -> Space:
        return cls(row.id, SpaceIdentity(row.model, row.weights_sha256, row.dim), row.state)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.identity.model, "weights_sha256": self.identity.weights_sha256,
                "dim": self.dim, "state": self.state}


def index_name(space_id: int) -> str:
    return f"ix_image_embeddings_space_{int(space_id)}"


def space_index_sql(space_id: int, dim: int) -> str:
    """The space's own HNSW index: over `embedding::vector(dim)`, for its rows only."""
    return (f"CREATE INDEX IF NOT EXISTS {index_name(space_id)} ON image_embeddings "
            f"USING hnsw ((embedding::vector({int(dim)})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
            f"WHERE space_id = {int(space_id)}")


def create_space_index(session: Session, space_id: int, dim: int) -> None:
    session.execute(text(space_index_sql(space_id, dim)))


def ensure_space(session: Session, identity: SpaceIdentity) -> Space:
    """The space of `identity`, registered (with its index) the first time it is seen."""
    row = session.scalars(select(EmbeddingSpace).filter_by(model=identity.model, dim=identity.dim,
                                                          weights_sha256=identity.weights_sha256)).first()
    if row is not None:
        return Space.of(row)
    # one registration at a time: two first sightings must not both build the index
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('mediamesh.embedding_spaces'))"))
    nothing_embedded = not session.scalar(select(exists().select_from(ImageEmbedding)))
    state = "complete" if nothing_embedded else "filling"
    session.execute(insert(EmbeddingSpace).values(
        model=identity.model, weights_sha256=identity.weights_sha256, dim=identity.dim, state=state,
        completed_at=func.now() if nothing_embedded else None).on_conflict_do_nothing())
    row = session.scalars(select(EmbeddingSpace).filter_by(model=identity.model, dim=identity.dim,
                                                          weights_sha256=identity.weights_sha256)).one()
    create_space_index(session, row.id, row.dim)
    return Space.of(row)


def newest_complete(session: Session, other_than: int | None = None) -> Space | None:
    query = select(EmbeddingSpace).where(EmbeddingSpace.state == "complete")
    if other_than is not None:
        query = query.where(EmbeddingSpace.id != other_than)
    row = session.scalars(query.order_by(EmbeddingSpace.completed_at.desc(), EmbeddingSpace.id.desc())).first()
    return None if row is None else Space.of(row)


def active(session: Session) -> Space | None:
    """The space last registered: the current clip model's (the newest model to embed anything)."""
    row = session.scalars(select(EmbeddingSpace).order_by(EmbeddingSpace.id.desc())).first()
    return None if row is None else Space.of(row)


def missing(session: Session, space_id: int, limit: int) -> list[str]:
    """Items with a vector in some other space but none in this one (what a re-embed still has to do)."""
    has_here = exists().where(ImageEmbedding.media_id == Media.id, ImageEmbedding.space_id == space_id)
    has_any = exists().where(ImageEmbedding.media_id == Media.id)
    return list(session.scalars(select(Media.id).where(has_any, ~has_here).order_by(Media.id).limit(limit)))


def coverage(session: Session, space_id: int) -> tuple[int, int]:
    """(items with a vector in this space, items with a vector in any space)."""
    done = session.scalar(select(func.count()).select_from(ImageEmbedding).where(ImageEmbedding.space_id == space_id))
    total = session.scalar(select(func.count(func.distinct(ImageEmbedding.media_id))))
    return int(done or 0), int(total or 0)


def mark_complete(session: Session, space_id: int) -> None:
    session.execute(update(EmbeddingSpace).where(EmbeddingSpace.id == space_id, EmbeddingSpace.state != "complete")
                    .values(state="complete", completed_at=func.now()))


def choose(session: Session, current: Space | None, *, query_from_current: bool) -> tuple[Space | None, str | None]:
    """Which space a search reads, and why it is not the complete active one (None when it is).

    The active space when complete. Else the newest complete space, when the query vector is a stored
    item's (`query_from_current` False): the text or image query of a model can only be compared with its
    own space, so those read the items the active space holds so far."""
    if current is None or current.complete:
        return current, None
    previous = newest_complete(session, other_than=current.id)
    done, total = coverage(session, current.id)
    why = (f"embeddings: the active model {current.identity.describe()} has embedded {done} of {total} items "
           "(`mediamesh reembed` fills its space)")
    if previous is None or query_from_current:
        return current, why + "; image matches come from those only"
    return previous, why + f"; image matches come from the previous complete space, {previous.identity.describe()}"


@dataclass(frozen=True)
class SpaceSummary:
    space: Space
    items: int  # with a vector in this space
    embedded: int  # with a vector in any space


class SpaceRepository:
    """The spaces and the re-embed job's reads and writes, each in its own unit of work."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, identity: SpaceIdentity) -> Space:
        with self.db.session() as session:
            return ensure_space(session, identity)

    def one_embedded(self, skip: Collection[str] = ()) -> list[tuple[str, str]]:
        """(media id, sha256) of one item with a vector in any space: what a re-embed asks the model first."""
        query = select(Media.id, Media.sha256).where(exists().where(ImageEmbedding.media_id == Media.id))
        if skip:
            query = query.where(Media.id.not_in(list(skip)))
        with self.db.session() as session:
            return [(row[0], row[1]) for row in session.execute(query.order_by(Media.id).limit(1))]

    def missing(self, space_id: int, limit: int, skip: Collection[str] = ()) -> list[tuple[str, str]]:
        """(media id, sha256) of items the space still lacks (`skip`: those that already failed)."""
        with self.db.session() as session:
            ids = missing(session, space_id, limit + len(skip))
            wanted = [media_id for media_id in ids if media_id not in skip][:limit]
            rows = dict(session.execute(select(Media.id, Media.sha256).where(Media.id.in_(wanted))).all())
            return [(media_id, rows[media_id]) for media_id in wanted if media_id in rows]

    def save(self, space: Space, vectors: dict[str, list[float]]) -> None:
        """Each item's vector in this space (replacing one there); items deleted meanwhile are skipped."""
        with self.db.session() as session:
            present = set(session.scalars(select(Media.id).where(Media.id.in_(vectors)).with_for_update(read=True)))
            for media_id in sorted(present):
                statement = insert(ImageEmbedding).values(media_id=media_id, space_id=space.id,
                                                          model=space.identity.model, embedding=vectors[media_id])
                session.execute(statement.on_conflict_do_update(
                    constraint="uq_image_embeddings_media_space",
                    set_={"embedding": statement.excluded.embedding, "created_at": func.now()}))

    def coverage(self, space_id: int) -> tuple[int, int]:
        with self.db.session() as session:
            return coverage(session, space_id)

    def mark_complete(self, space_id: int) -> None:
        with self.db.session() as session:
            mark_complete(session, space_id)

    def summaries(self) -> list[SpaceSummary]:
        """Every space, newest first, with how many items it holds."""
        with self.db.session() as session:
            rows = session.scalars(select(EmbeddingSpace).order_by(EmbeddingSpace.id.desc())).all()
            return [SpaceSummary(Space.of(row), *coverage(session, row.id)) for row in rows]


class CompleteSpaces:
    """The complete spaces met so far, by identity: a search in one of them skips the lookup. They stay
    right for the process's life: an identity keeps its space (and id), `complete` is a space's last
    state (a re-embed fills a new space, never an old one again) and spaces are never deleted."""

    def __init__(self) -> None:
        self._known: dict[SpaceIdentity, Space] = {}

    def ensure(self, session: Session, identity: SpaceIdentity) -> Space:
        """`ensure_space`, without a query once the space was seen complete."""
        space = self._known.get(identity)
        if space is None:
            space = ensure_space(session, identity)
            if space.complete:
                self._known[identity] = space
        return space
