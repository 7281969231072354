"""Dispatch one job to its pipeline; what an ingest computed for an image, and the item's outcome (ready /
degraded + reasons), are written in the transaction that marks the job done (`Finished.writes`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from storage.models import Media
from storage.repositories.image_results import ImageResults, write_image_results, write_outcome
from storage.repositories.jobs import StartedJob
from worker.pipelines.audio import transcribe
from worker.pipelines.clusters import build_clusters
from worker.pipelines.context import Outcome, PermanentError, PipelineContext
from worker.pipelines.image import image_results
from worker.pipelines.json_doc import analyse_json
from worker.pipelines.reembed import reembed
from worker.pipelines.video import analyse_video

# JSON is read whole (it was checked to fit in memory at upload); audio and video are read from their file,
# whatever their size; images (read whole too) keep their results for the job's last transaction
READ_WHOLE: dict[str, Callable[[PipelineContext, str, bytes], Outcome]] = {"json": analyse_json}
FROM_FILE: dict[str, Callable[[PipelineContext, str, Path], Outcome]] = {"audio": transcribe,
                                                                         "video": analyse_video}


@dataclass(frozen=True)
class Finished:
    """A job's result, and the writes that go with marking it done (none: everything is stored already)."""

    result: dict[str, Any]
    writes: Callable[[Session], None] | None = None


def run_job(ctx: PipelineContext, started: StartedJob) -> Finished:
    job = started.job
    if job.kind == "cluster":
        return Finished(build_clusters(ctx, job.params))
    if job.kind == "reembed":
        return Finished(reembed(ctx, job.params))
    if job.kind != "ingest" or job.media_id is None:
        raise PermanentError(f"job {job.id} has unknown kind {job.kind!r}")
    if started.media is None:
        raise PermanentError(f"media {job.media_id} no longer exists")
    return ingest_media(ctx, started.media)


def ingest_media(ctx: PipelineContext, media: Media) -> Finished:
    media_id = media.id
    path = ctx.store.path(media.sha256)
    results: ImageResults | None = None
    if media.kind == "image":
        results, outcome = image_results(ctx, path.read_bytes())
    elif media.kind in FROM_FILE:
        path.stat()  # a missing file fails the attempt here, as reading it would
        outcome = FROM_FILE[media.kind](ctx, media_id, path)
    else:
        outcome = READ_WHOLE[media.kind](ctx, media_id, path.read_bytes())

    def writes(session: Session) -> None:
        if results is not None:
            write_image_results(session, media_id, results)
        write_outcome(session, media_id, outcome.reasons)

    return Finished({"media_id": media_id, "status": "degraded" if outcome.reasons else "ready",
                     "computed": outcome.computed, "degraded_reasons": outcome.reasons}, writes)
