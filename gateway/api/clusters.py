"""`POST /v1/clusters` (a job: group, name, enrich) and `GET /v1/clusters` (the latest run)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from gateway.api.accept import enqueue_job
from gateway.api.deps import SettingsDep, StorageDep
from gateway.api.schemas import ClusterPublic, ClusterRequest
from shared.http.errors import BadInput
from storage.models import Cluster, ClusterMember, ImageEmbedding, Media

router = APIRouter(tags=["clusters"])


@router.post("/v1/clusters", status_code=202)
def start_clustering(storage: StorageDep, settings: SettingsDep,
                     request: ClusterRequest | None = None) -> dict[str, str]:
    """Queue a clustering job; follow it at `GET /v1/jobs/{job_id}`."""
    params = (request or ClusterRequest()).model_dump()
    with storage.db.session() as session:
        query = select(func.count()).select_from(ImageEmbedding).join(Media, Media.id == ImageEmbedding.media_id)
        if not params["include_frames"]:
            query = query.where(Media.parent_id.is_(None))
        embedded = session.execute(query).scalar_one()
    if embedded < 2 or (params["k"] or 2) > embedded:
        raise BadInput(f"clustering {params['k'] or 'at least 2'} groups needs at least that many processed images; "
                       f"{embedded} have a CLIP embedding (ingest more, or lower k)")
    return {"job_id": enqueue_job(storage, "cluster", None, params, settings.job_max_attempts)}


@router.get("/v1/clusters", response_model=list[ClusterPublic])
def list_clusters(storage: StorageDep) -> list[ClusterPublic]:
    with storage.db.session() as session:
        clusters = session.scalars(select(Cluster).order_by(Cluster.size.desc(), Cluster.id)).all()
        members = session.execute(select(ClusterMember).order_by(ClusterMember.distance)).scalars().all()
    by_cluster: dict[int, list[ClusterMember]] = {}
    for member in members:
        by_cluster.setdefault(member.cluster_id, []).append(member)
    return [ClusterPublic(
        id=c.id, run_id=c.run_id, name=c.name, description=c.description, tags=c.tags, category=c.category,
        confidence=c.confidence, enrichment=c.enrichment, size=c.size, degraded_reasons=c.degraded_reasons,
        representatives=[m.media_id for m in by_cluster.get(c.id, []) if m.representative],
        members=[m.media_id for m in by_cluster.get(c.id, [])], created_at=c.created_at) for c in clusters]
