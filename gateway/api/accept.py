"""Accepting an upload: store the bytes by hash, record media + job, enqueue — or change nothing at all."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from gateway.api.detect import Detected
from gateway.api.schemas import UploadAccepted
from shared.http.errors import NotFound, Unavailable
from storage.media_files import IncomingFile
from storage.models import Media
from storage.repositories.media import DuplicateMedia, NewMedia
from storage.runtime import Storage

log = logging.getLogger(__name__)


def _accepted(storage: Storage, media: Media, duplicate: bool, job_id: str | None = None) -> UploadAccepted:
    return UploadAccepted(job_id=job_id or storage.jobs.latest_id_for(media.id), media_id=media.id,
                          sha256=media.sha256, kind=media.kind, mime=media.mime, size=media.size,
                          duplicate=duplicate, status=media.status)


def accept_upload(storage: Storage, upload: IncomingFile, detected: Detected, original_name: str | None,
                  max_attempts: int) -> UploadAccepted:
    """`upload` is a finished upload in the store's incoming folder; it is renamed into its content address."""
    sha = upload.sha256
    # no lookup first: a new upload (the usual case) costs one transaction, a duplicate finds its record
    # when the insert is refused; the file is only deleted on failure if this upload brought it
    stored_before = storage.store.path(sha).exists()
    _, path = storage.store.commit(upload)
    new = NewMedia(sha256=sha, kind=detected.kind, mime=detected.mime, size=upload.size, path=path,
                   original_name=_shown_name(original_name), photo=detected.photo)
    try:
        media, job = storage.media.add_with_ingest_job(new, max_attempts)
    except DuplicateMedia:  # stored already (or the same bytes arrived concurrently and the other upload won)
        winner = storage.media.by_sha256(sha)
        if winner is None:
            raise
        return _accepted(storage, winner, duplicate=True)
    except Exception:
        if not stored_before:
            storage.store.delete(sha)  # no record was written: leave no file either
        raise
    _enqueue_or_undo(storage, job.id, undo=lambda: _forget_upload(storage, media.id, sha))
    return _accepted(storage, media, duplicate=False, job_id=job.id)


def _shown_name(name: str | None) -> str | None:
    """The client's file name, shown only: control characters (NUL, which Postgres refuses, among them) go."""
    return "".join(c for c in (name or "") if c.isprintable())[:255] or None


def enqueue_job(storage: Storage, kind: str, media_id: str | None, params: dict[str, Any], max_attempts: int) -> str:
    job = storage.jobs.create(kind, media_id, params, max_attempts)
    if job is None:
        raise NotFound(f"no media with id {media_id}")
    _enqueue_or_undo(storage, job.id, undo=lambda: storage.jobs.delete(job.id))
    return job.id


def _forget_upload(storage: Storage, media_id: str, sha: str) -> None:
    storage.media.delete(media_id)
    storage.store.delete(sha)


def _enqueue_or_undo(storage: Storage, job_id: str, undo: Callable[[], None]) -> None:
    """Committed first so the worker always finds the job; if Redis refuses, the records go again."""
    try:
        storage.queue.enqueue(job_id)
    except redis.RedisError as exc:
        log.error("enqueue of job %s failed: %s", job_id, exc)
        undo()
        raise Unavailable("the job queue (Redis) is unreachable; nothing was stored, retry shortly") from exc
