"""`POST /v1/classify/{request_id}/feedback` (the true label) and `GET /v1/cascade/report` (A/B)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import StorageDep
from gateway.cascade.report import report
from shared.http.errors import NotFound
from shared.schemas.gateway import CascadeReport, FeedbackRequest, FeedbackResponse

router = APIRouter(tags=["cascade"])


@router.post("/v1/classify/{request_id}/feedback", response_model=FeedbackResponse)
async def feedback(request_id: str, body: FeedbackRequest, storage: StorageDep) -> FeedbackResponse:
    """The true label of a classified image: it scores the variant that answered in the report."""
    updated = await run_in_threadpool(storage.classify_results.give_truth, request_id, body.label)
    if updated == 0:
        raise NotFound(f"no stored classify answer has request_id '{request_id}'; "
                       "use the request_id a `POST /v1/classify` answer returned")
    return FeedbackResponse(request_id=request_id, label=body.label, results=updated)


@router.get("/v1/cascade/report", response_model=CascadeReport)
async def cascade_report(storage: StorageDep, variant: str | None = None) -> CascadeReport:
    """Per variant: accuracy (answers with feedback), escalation and review rates, mean stage calls and
    latency per image, each with a 95 % confidence interval."""
    return report(await run_in_threadpool(storage.classify_results.outcomes, variant))
