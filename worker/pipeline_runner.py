"""Dispatch one job to its pipeline and record the media item's outcome (ready / degraded + reasons)."""

from __future__ import annotations

from typing import Any

from storage.models import Job
from worker.pipelines.audio import transcribe
from worker.pipelines.clusters import build_clusters
from worker.pipelines.context import Outcome, PermanentError, PipelineContext
from worker.pipelines.image import analyse_image
from worker.pipelines.json_doc import analyse_json
from worker.pipelines.video import analyse_video

PIPELINES = {"image": analyse_image, "audio": transcribe, "video": analyse_video, "json": analyse_json}


def run_job(ctx: PipelineContext, job: Job) -> dict[str, Any]:
    if job.kind == "cluster":
        return build_clusters(ctx, job.params)
    if job.kind != "ingest" or job.media_id is None:
        raise PermanentError(f"job {job.id} has unknown kind {job.kind!r}")
    return ingest_media(ctx, job.media_id)


def ingest_media(ctx: PipelineContext, media_id: str) -> dict[str, Any]:
    media = ctx.media.get(media_id)
    if media is None:
        raise PermanentError(f"media {media_id} no longer exists")
    data = ctx.store.read(media.sha256)
    outcome: Outcome = PIPELINES[media.kind](ctx, media_id, data)
    ctx.media.set_outcome(media_id, outcome.reasons)
    return {"media_id": media_id, "status": "degraded" if outcome.reasons else "ready",
            "computed": outcome.computed, "degraded_reasons": outcome.reasons}
