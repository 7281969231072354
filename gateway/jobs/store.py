"""Job state in Postgres: what `GET /v1/jobs/{id}` shows and what survives a Redis or worker restart."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from gateway.storage.db import Database
from gateway.storage.models import Job, Media

FINAL_STATES = ("done", "failed")


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, job_id: str) -> Job | None:
        with self.db.session() as session:
            return session.get(Job, job_id)

    def start(self, job_id: str) -> Job | None:
        """Count one more attempt and mark it running; None if the job is gone or already final."""
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.state in FINAL_STATES:
                return None
            job.attempts += 1
            job.state = "running"
            job.stage = "starting"
            if job.media_id:
                session.execute(update(Media).where(Media.id == job.media_id).values(status="processing"))
            return job

    def progress(self, job_id: str, progress: float, stage: str) -> None:
        with self.db.session() as session:
            session.execute(update(Job).where(Job.id == job_id)
                            .values(progress=max(0.0, min(1.0, progress)), stage=stage))

    def finish(self, job_id: str, result: dict[str, Any]) -> None:
        with self.db.session() as session:
            session.execute(update(Job).where(Job.id == job_id)
                            .values(state="done", progress=1.0, stage="done", error=None, result=result))

    def retry_later(self, job_id: str, error: str, delay_s: float) -> None:
        with self.db.session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(
                state="retrying", stage=f"retrying in {delay_s:.1f}s", error=error))

    def fail(self, job_id: str, error: str) -> None:
        """The last attempt failed: a visible, final state; the media record says so too."""
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                return
            job.state, job.stage, job.error = "failed", "failed", error
            if job.media_id:
                media = session.get(Media, job.media_id)
                if media is not None:
                    media.status = "failed"
                    media.degraded_reasons = [*media.degraded_reasons, f"job failed: {error}"]


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff: base, 2*base, 4*base, ... capped at max_s."""
    return min(max_s, base_s * (2 ** max(0, attempt - 1)))
