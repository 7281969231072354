"""The clusters aggregate: one clustering run's groups of images, with names, enrichment and members."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, delete, func, select

from storage.db import Database
from storage.models import Cluster, ClusterMember, EmbeddingSpace, ImageEmbedding, Media


@dataclass
class ClusterDraft:
    """A group found by a clustering run, before it is stored: members closest to the centre first."""

    members: list[tuple[str, float]]
    name: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    category: str | None = None
    confidence: float | None = None
    enrichment: dict[str, Any] | None = None
    degraded_reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterView:
    cluster: Cluster
    members: list[str]
    representatives: list[str]


class ClusterRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def count_embedded(self, include_frames: bool) -> int:
        """How many items a clustering run would group (those with a CLIP embedding)."""
        with self.db.session() as session:
            return int(session.execute(_embedded(select(func.count()), include_frames)).scalar_one())

    def embeddings(self, include_frames: bool) -> list[tuple[str, Any]]:
        """(media id, vector) of every item with a CLIP embedding, by media id."""
        query = _embedded(select(ImageEmbedding.media_id, ImageEmbedding.embedding), include_frames)
        with self.db.session() as session:
            return [(row.media_id, row.embedding) for row in session.execute(query.order_by(ImageEmbedding.media_id))]

    def replace_all(self, run_id: str, drafts: list[ClusterDraft], representatives: int) -> None:
        """A new run replaces the previous clusters; the first `representatives` members of each are marked."""
        with self.db.session() as session:
            session.execute(delete(Cluster))
            for draft in drafts:
                cluster = Cluster(run_id=run_id, name=draft.name, description=draft.description, tags=draft.tags,
                                  category=draft.category, confidence=draft.confidence,
                                  enrichment=draft.enrichment, size=len(draft.members),
                                  degraded_reasons=draft.degraded_reasons)
                session.add(cluster)
                session.flush()
                session.add_all(ClusterMember(cluster_id=cluster.id, media_id=media_id, distance=distance,
                                              representative=rank < representatives)
                                for rank, (media_id, distance) in enumerate(draft.members))

    def latest(self) -> list[ClusterView]:
        """The clusters of the latest run, largest first; members closest to the centre first."""
        with self.db.session() as session:
            clusters = session.scalars(select(Cluster).order_by(Cluster.size.desc(), Cluster.id)).all()
            members = session.scalars(select(ClusterMember).order_by(ClusterMember.distance)).all()
        by_cluster: dict[int, list[ClusterMember]] = {}
        for member in members:
            by_cluster.setdefault(member.cluster_id, []).append(member)
        return [ClusterView(cluster, [m.media_id for m in by_cluster.get(cluster.id, [])],
                            [m.media_id for m in by_cluster.get(cluster.id, []) if m.representative])
                for cluster in clusters]


def _embedded(query: Select[Any], include_frames: bool) -> Select[Any]:
    """Vectors of one space (never two models' at once): the newest complete one."""
    newest_complete = (select(EmbeddingSpace.id).where(EmbeddingSpace.state == "complete")
                       .order_by(EmbeddingSpace.completed_at.desc(), EmbeddingSpace.id.desc()).limit(1))
    query = query.select_from(ImageEmbedding).join(Media, Media.id == ImageEmbedding.media_id)
    query = query.where(ImageEmbedding.space_id == newest_complete.scalar_subquery())
    return query if include_frames else query.where(Media.parent_id.is_(None))
