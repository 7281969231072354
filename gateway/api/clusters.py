"""`POST /v1/clusters` (a job: group, name, enrich) and `GET /v1/clusters` (the latest run)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.accept import enqueue_job
from gateway.api.deps import SettingsDep, StorageDep
from gateway.api.schemas import ClusterPublic, ClusterRequest
from shared.http.errors import BadInput

router = APIRouter(tags=["clusters"])


@router.post("/v1/clusters", status_code=202)
def start_clustering(storage: StorageDep, settings: SettingsDep,
                     request: ClusterRequest | None = None) -> dict[str, str]:
    """Queue a clustering job; follow it at `GET /v1/jobs/{job_id}`."""
    params = (request or ClusterRequest()).model_dump()
    embedded = storage.clusters.count_embedded(include_frames=params["include_frames"])
    if embedded < 2 or (params["k"] or 2) > embedded:
        raise BadInput(f"clustering {params['k'] or 'at least 2'} groups needs at least that many processed images; "
                       f"{embedded} have a CLIP embedding (ingest more, or lower k)")
    return {"job_id": enqueue_job(storage, "cluster", None, params, settings.job_max_attempts)}


@router.get("/v1/clusters", response_model=list[ClusterPublic])
def list_clusters(storage: StorageDep) -> list[ClusterPublic]:
    return [ClusterPublic.from_view(view) for view in storage.clusters.latest()]
