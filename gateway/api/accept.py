"""Accepting an upload: store the bytes by hash, record media + job, enqueue — or change nothing at all."""

from __future__ import annotations

import logging

import redis
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from gateway.api.detect import Detected
from gateway.api.schemas import UploadAccepted
from shared.http.errors import NotFound, Unavailable
from storage.media_files import sha256_of
from storage.models import Job, Media
from storage.runtime import Storage

log = logging.getLogger(__name__)


def latest_job_id(storage: Storage, media_id: str) -> str | None:
    with storage.db.session() as session:
        return session.scalars(select(Job.id).where(Job.media_id == media_id)
                               .order_by(Job.created_at.desc()).limit(1)).first()


def _accepted(storage: Storage, media: Media, duplicate: bool, job_id: str | None = None) -> UploadAccepted:
    return UploadAccepted(job_id=job_id or latest_job_id(storage, media.id), media_id=media.id, sha256=media.sha256,
                          kind=media.kind, mime=media.mime, size=media.size, duplicate=duplicate, status=media.status)


def find_by_sha(storage: Storage, sha256: str) -> Media | None:
    with storage.db.session() as session:
        return session.scalars(select(Media).where(Media.sha256 == sha256)).first()


def accept_upload(storage: Storage, data: bytes, detected: Detected, original_name: str | None,
                  max_attempts: int) -> UploadAccepted:
    sha = sha256_of(data)
    existing = find_by_sha(storage, sha)
    if existing is not None:
        return _accepted(storage, existing, duplicate=True)
    _, path = storage.store.put(data)
    try:
        with storage.db.session() as session:
            media = Media(sha256=sha, kind=detected.kind, mime=detected.mime, size=len(data), path=path,
                          original_name=(original_name or "")[:255] or None, status="queued", degraded_reasons=[])
            session.add(media)
            session.flush()
            job = Job(kind="ingest", media_id=media.id, max_attempts=max_attempts, params={})
            session.add(job)
    except IntegrityError:  # the same bytes arrived concurrently and the other upload won
        winner = find_by_sha(storage, sha)
        if winner is None:
            raise
        return _accepted(storage, winner, duplicate=True)
    except Exception:
        storage.store.delete(sha)  # no record was written: leave no file either
        raise
    _enqueue_or_undo(storage, job.id, media_id=media.id, sha=sha)
    return _accepted(storage, media, duplicate=False, job_id=job.id)


def _enqueue_or_undo(storage: Storage, job_id: str, *, media_id: str | None, sha: str | None = None) -> None:
    """Committed first so the worker always finds the job; if Redis refuses, the records go again."""
    try:
        storage.queue.enqueue(job_id)
    except redis.RedisError as exc:
        log.error("enqueue of job %s failed: %s", job_id, exc)
        with storage.db.session() as session:
            if sha is not None and media_id is not None:
                session.execute(delete(Media).where(Media.id == media_id))
            else:
                session.execute(delete(Job).where(Job.id == job_id))
        if sha is not None:
            storage.store.delete(sha)
        raise Unavailable("the job queue (Redis) is unreachable; nothing was stored, retry shortly") from exc


def enqueue_job(storage: Storage, kind: str, media_id: str | None, params: dict, max_attempts: int) -> str:
    with storage.db.session() as session:
        if media_id is not None:
            media = session.get(Media, media_id)
            if media is None:
                raise NotFound(f"no media with id {media_id}")
            media.status = "queued"
        job = Job(kind=kind, media_id=media_id, max_attempts=max_attempts, params=params)
        session.add(job)
    _enqueue_or_undo(storage, job.id, media_id=None)
    return job.id
