"""`POST /v1/reembed` (a job: every embedded item into the active model's space) and
`GET /v1/embedding-spaces` (each model's vectors: how many items, complete or filling).

Search compares a query only with vectors of one space; see `storage.spaces`."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gateway.api.accept import enqueue_job
from gateway.api.deps import SettingsDep, StorageDep
from gateway.api.schemas import EmbeddingSpacePublic
from storage.repositories.jobs import JobFilters

router = APIRouter(tags=["search"])
UNFINISHED = ("queued", "running", "retrying")


class ReembedAccepted(BaseModel):
    job_id: str = Field(description="Follow it at `GET /v1/jobs/{job_id}` (progress: items done / all).")
    already_running: bool = Field(description="A re-embed was already queued or running: this is that job.")


class EmbeddingSpaceSummary(EmbeddingSpacePublic):
    items: int = Field(description="Items with a vector in this space.")
    embedded: int = Field(description="Items with a vector in any space (what a complete re-embed covers).")


@router.post("/v1/reembed", status_code=202, response_model=ReembedAccepted)
def start_reembed(storage: StorageDep, settings: SettingsDep) -> ReembedAccepted:
    """Queue a re-embed into the space of the model the clip service runs now. Until it completes,
    search answers similar-item queries from the previous complete space, and says so in `degraded`.
    Resumable: a re-embed stopped (worker restart, cancel) and started again carries on where it was."""
    for state in UNFINISHED:
        running = storage.jobs.page(JobFilters(state=state, kind="reembed"), limit=1, offset=0).items
        if running:
            return ReembedAccepted(job_id=running[0].id, already_running=True)
    job_id = enqueue_job(storage, "reembed", None, {}, settings.job_max_attempts)
    return ReembedAccepted(job_id=job_id, already_running=False)


@router.get("/v1/embedding-spaces", response_model=list[EmbeddingSpaceSummary])
async def list_spaces(storage: StorageDep) -> list[EmbeddingSpaceSummary]:
    """Every embedding space, newest first: the newest is the active model's."""
    summaries = await run_in_threadpool(storage.spaces.summaries)
    return [EmbeddingSpaceSummary(**s.space.public(), items=s.items, embedded=s.embedded) for s in summaries]
