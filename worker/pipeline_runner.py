"""Dispatch one job to its pipeline and record the media item's outcome (ready / degraded + reasons)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.models import Job
from worker.pipelines.audio import transcribe
from worker.pipelines.clusters import build_clusters
from worker.pipelines.context import Outcome, PermanentError, PipelineContext
from worker.pipelines.image import analyse_image
from worker.pipelines.json_doc import analyse_json
from worker.pipelines.reembed import reembed
from worker.pipelines.video import analyse_video

# images and JSON are read whole (they were checked to fit in memory at upload); audio and video are read from
# their file, whatever their size
READ_WHOLE: dict[str, Callable[[PipelineContext, str, bytes], Outcome]] = {"image": analyse_image,
                                                                           "json": analyse_json}
FROM_FILE: dict[str, Callable[[PipelineContext, str, Path], Outcome]] = {"audio": transcribe,
                                                                         "video": analyse_video}


def run_job(ctx: PipelineContext, job: Job) -> dict[str, Any]:
    if job.kind == "cluster":
        return build_clusters(ctx, job.params)
    if job.kind == "reembed":
        return reembed(ctx, job.params)
    if job.kind != "ingest" or job.media_id is None:
        raise PermanentError(f"job {job.id} has unknown kind {job.kind!r}")
    return ingest_media(ctx, job.media_id)


def ingest_media(ctx: PipelineContext, media_id: str) -> dict[str, Any]:
    media = ctx.media.get(media_id)
    if media is None:
        raise PermanentError(f"media {media_id} no longer exists")
    path = ctx.store.path(media.sha256)
    if media.kind in FROM_FILE:
        path.stat()  # a missing file fails the attempt here, as reading it would
        outcome = FROM_FILE[media.kind](ctx, media_id, path)
    else:
        outcome = READ_WHOLE[media.kind](ctx, media_id, path.read_bytes())
    ctx.media.set_outcome(media_id, outcome.reasons)
    return {"media_id": media_id, "status": "degraded" if outcome.reasons else "ready",
            "computed": outcome.computed, "degraded_reasons": outcome.reasons}
