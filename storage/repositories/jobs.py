"""The jobs aggregate: what `GET /v1/jobs/{id}` shows and what survives a Redis or worker restart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models import Job, Media

FINAL_STATES = ("done", "failed", "cancelled")


class JobFinished(Exception):
    """The job already ended (done or failed): there is nothing left to cancel."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


@dataclass(frozen=True)
class JobFilters:
    state: str | None = None
    kind: str | None = None
    media_id: str | None = None


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    total: int


class RunningElsewhere(Exception):
    """The job is running on a worker that touched it lately: a duplicate delivery, or its worker just died."""


@dataclass(frozen=True)
class StartedJob:
    job: Job
    media: Media | None  # an ingest job's item (None for other kinds, or if it was deleted)


class JobRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, job_id: str) -> Job | None:
        with self.db.session() as session:
            return session.get(Job, job_id)

    def create(self, kind: str, media_id: str | None, params: dict[str, Any], max_attempts: int) -> Job | None:
        """A queued job; for a media item, the item is marked queued too. None if that item does not exist."""
        with self.db.session() as session:
            if media_id is not None:
                media = session.get(Media, media_id)
                if media is None:
                    return None
                media.status = "queued"
            job = Job(kind=kind, media_id=media_id, max_attempts=max_attempts, params=params)
            session.add(job)
        return job

    def page(self, filters: JobFilters, *, limit: int, offset: int) -> JobPage:
        """Jobs matching every filter given, newest first, one page of them and how many match."""
        query = select(Job)
        for column, value in ((Job.state, filters.state), (Job.kind, filters.kind), (Job.media_id, filters.media_id)):
            if value is not None:
                query = query.where(column == value)
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset))
            return JobPage(list(rows), total)

    def cancel(self, job_id: str) -> Job | None:
        """Mark the job cancelled (again: a no-op); None if unknown, JobFinished if it already ended.

        A queued or retrying job is then skipped when delivered (`start`); a running one stops at its next
        stage, when its progress report finds it no longer running (`progress`)."""
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.state == "cancelled":
                return job
            if job.state in FINAL_STATES:
                raise JobFinished(job.state)
            job.state, job.stage, job.error = "cancelled", "cancelled", "cancelled on request"
            media = session.get(Media, job.media_id) if job.media_id else None
            if media is not None and media.status in ("queued", "processing"):
                media.status = "failed"
                media.degraded_reasons = [*media.degraded_reasons,
                                          f"job {job_id} was cancelled; reprocess the item to run it"]
            session.flush()
            session.refresh(job)  # updated_at is set by the database
            return job

    def delete(self, job_id: str) -> None:
        with self.db.session() as session:
            session.execute(delete(Job).where(Job.id == job_id))

    def work_kinds(self, job_ids: list[str]) -> dict[str, str]:
        """What each job works on, in one query: its media's kind (image, audio, ...) for an ingest job, else
        the job's own kind (cluster). Unknown ids are left out."""
        if not job_ids:
            return {}
        query = (select(Job.id, Job.kind, Media.kind).outerjoin(Media, Media.id == Job.media_id)
                 .where(Job.id.in_(job_ids)))
        with self.db.session() as session:
            return {job_id: media_kind if job_kind == "ingest" and media_kind else job_kind
                    for job_id, job_kind, media_kind in session.execute(query)}

    def latest_id_for(self, media_id: str) -> str | None:
        with self.db.session() as session:
            return session.scalars(select(Job.id).where(Job.media_id == media_id)
                                   .order_by(Job.created_at.desc()).limit(1)).first()

    def start(self, job_id: str, alive_within_s: float) -> StartedJob | None:
        """Count one more attempt and mark it (and its media item) running; None if the job is gone or already
        final. Raises `RunningElsewhere` if a worker touched it within `alive_within_s`."""
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.state in FINAL_STATES:
                return None
            if job.state == "running" and _age_s(session, job) < alive_within_s:
                raise RunningElsewhere(job_id)
            job.attempts += 1
            job.state = "running"
            job.stage = "starting"
            media = session.get(Media, job.media_id) if job.media_id else None
            if media is not None:
                media.status = "processing"
            return StartedJob(job, media)

    def touch(self, *job_ids: str) -> None:
        """A worker is alive and on them, or holds them claimed (heartbeat); what stale-job recovery looks at."""
        if not job_ids:
            return
        with self.db.session() as session:
            session.execute(update(Job).where(Job.id.in_(job_ids)).values(updated_at=func.now()))

    def stale(self, older_than_s: float, limit: int = 500) -> list[str]:
        """Unfinished jobs nobody has touched for `older_than_s`: their queue entry may be lost."""
        cutoff = func.now() - timedelta(seconds=older_than_s)
        with self.db.session() as session:
            return list(session.scalars(select(Job.id).where(Job.state.in_(("queued", "retrying", "running")),
                                                             Job.updated_at < cutoff).limit(limit)))

    def progress(self, job_id: str, progress: float, stage: str) -> bool:
        """Record a running job's stage; False if it is no longer running (cancelled, or its media deleted)."""
        return self._update_running(job_id, progress=max(0.0, min(1.0, progress)), stage=stage)

    def finish(self, job_id: str, result: dict[str, Any], also: Callable[[Session], None] | None = None) -> bool:
        """Mark a running job done and, in the same transaction, make `also`'s writes (the job's results);
        False, with nothing written, if it is no longer running (cancelled, or its media deleted)."""
        with self.db.session() as session:
            media_id = session.scalar(select(Job.media_id).where(Job.id == job_id))
            # its media row first, as a delete takes it (then the job's, by cascade): the two never deadlock
            if media_id is not None and session.get(Media, media_id, with_for_update=True) is None:
                return False  # deleted meanwhile
            changed = session.execute(update(Job).where(Job.id == job_id, Job.state == "running").values(
                state="done", progress=1.0, stage="done", error=None, result=result))
            if not changed.rowcount:  # type: ignore[attr-defined]
                return False
            if also is not None:
                also(session)
            return True

    def retry_later(self, job_id: str, error: str, delay_s: float) -> bool:
        """False if the job is no longer running: then it must not be queued again."""
        return self._update_running(job_id, state="retrying", stage=f"retrying in {delay_s:.1f}s", error=error)

    def _update_running(self, job_id: str, **values: Any) -> bool:
        # only a running job moves on: a cancel (or a delete of its media) in the meantime wins
        with self.db.session() as session:
            changed = session.execute(update(Job).where(Job.id == job_id, Job.state == "running").values(**values))
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    def fail(self, job_id: str, error: str) -> None:
        """The last attempt failed: a visible, final state; the media record says so too."""
        with self.db.session() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.state != "running":
                return
            job.state, job.stage, job.error = "failed", "failed", error
            if job.media_id:
                media = session.get(Media, job.media_id)
                if media is not None:
                    media.status = "failed"
                    media.degraded_reasons = [*media.degraded_reasons, f"job failed: {error}"]


def _age_s(session: Session, job: Job) -> float:
    return float(session.execute(select(func.extract("epoch", func.now() - job.updated_at))).scalar_one())
