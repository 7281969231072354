"""`POST /v1/media`, `POST /v1/media/{id}/reprocess`, `GET /v1/media/{id}`, `GET /v1/jobs/{id}`.

Handlers are plain `def`: FastAPI runs them in its thread pool, so hashing, decoding, probing and the
database never block the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from gateway.api.accept import accept_upload, enqueue_job
from gateway.api.deps import SettingsDep, StorageDep
from gateway.api.detect import detect
from gateway.api.schemas import JobPublic, MediaDetail, UploadAccepted
from shared.http.errors import NotFound, PayloadTooLarge
from storage.runtime import Storage

router = APIRouter(tags=["media"])
CHUNK = 1024 * 1024


def read_capped(upload: UploadFile, limit: int) -> bytes:
    chunks, total = [], 0
    while chunk := upload.file.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the upload is larger than the limit of {limit:,} bytes "
                                  "(GATEWAY_MAX_UPLOAD_BYTES); split or compress it")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/v1/media", status_code=202, response_model=UploadAccepted)
def upload_media(
    storage: StorageDep, settings: SettingsDep,
    file: Annotated[UploadFile, File(description="An image, audio, video or JSON file.")],
) -> UploadAccepted:
    """Store a file by its content hash and queue its ingest job; the same bytes twice give one record."""
    data = read_capped(file, settings.max_upload_bytes)
    detected = detect(data, max_image_pixels=settings.max_image_pixels)
    return accept_upload(storage, data, detected, file.filename, settings.job_max_attempts)


@router.post("/v1/media/{media_id}/reprocess", status_code=202)
def reprocess_media(media_id: str, storage: StorageDep, settings: SettingsDep) -> dict[str, str]:
    """Run the item's pipeline again (e.g. once a service that was down is back)."""
    job_id = enqueue_job(storage, "ingest", media_id, {"reprocess": True}, settings.job_max_attempts)
    return {"job_id": job_id, "media_id": media_id}


@router.get("/v1/media/by-sha256/{sha256}", response_model=MediaDetail)
def get_media_by_sha256(sha256: str, storage: StorageDep) -> MediaDetail:
    """Is this exact file already stored? (`mediamesh ingest` asks before uploading.)"""
    media = storage.media.by_sha256(sha256.lower())
    if media is None:
        raise NotFound(f"no media with sha256 {sha256}")
    return _detail(storage, media.id)


@router.get("/v1/media/{media_id}", response_model=MediaDetail)
def get_media(media_id: str, storage: StorageDep) -> MediaDetail:
    return _detail(storage, media_id)


@router.get("/v1/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: str, storage: StorageDep) -> JobPublic:
    job = storage.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return JobPublic.model_validate(job)


def _detail(storage: Storage, media_id: str) -> MediaDetail:
    record = storage.media.record(media_id)
    if record is None:
        raise NotFound(f"no media with id {media_id}")
    return MediaDetail.from_record(record)
