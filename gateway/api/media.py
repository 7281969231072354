"""`POST /v1/media`, `POST /v1/media/{id}/reprocess`, `GET /v1/media` (the library, filtered and paged),
`GET`/`DELETE /v1/media/{id}`, its `/thumbnail` and `/file`; `GET /v1/jobs` (filtered and paged),
`GET /v1/jobs/{id}` and `POST /v1/jobs/{id}/cancel`.

Handlers are plain `def`: FastAPI runs them in its thread pool, so hashing, decoding, probing and the
database never block the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Response, UploadFile
from fastapi.responses import FileResponse

from gateway.api.accept import accept_upload, enqueue_job
from gateway.api.deps import SettingsDep, StorageDep
from gateway.api.detect import detect_file
from gateway.api.filters import FiltersDep
from gateway.api.schemas import JobKind, JobList, JobPublic, JobState, MediaDetail, MediaList, UploadAccepted
from shared.http.errors import Conflict, NotFound, PayloadTooLarge
from storage.media_files import IncomingFile
from storage.models import Media
from storage.repositories.jobs import JobFilters, JobFinished
from storage.runtime import Storage
from storage.thumbnails import SIZES

router = APIRouter(tags=["media"])
CHUNK = 1024 * 1024
RECORD_ID = r"^[0-9a-f]{32}$"  # storage.models.new_id


def read_capped(upload: UploadFile, limit: int) -> bytes:
    """A small upload (a query image) read whole."""
    chunks, total = [], 0
    while chunk := upload.file.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the file is larger than the limit of {limit:,} bytes "
                                  "(GATEWAY_MAX_IN_MEMORY_BYTES); shrink it")
        chunks.append(chunk)
    return b"".join(chunks)


def copy_capped(upload: UploadFile, incoming: IncomingFile, limit: int) -> None:
    """Copy an upload into the store chunk by chunk, hashing as it goes: memory stays at one chunk."""
    while chunk := upload.file.read(CHUNK):
        if incoming.size + len(chunk) > limit:
            raise PayloadTooLarge(f"the upload is larger than the limit of {limit:,} bytes "
                                  "(GATEWAY_MAX_UPLOAD_BYTES); split or compress it")
        incoming.write(chunk)
    incoming.finish()


@router.post("/v1/media", status_code=202, response_model=UploadAccepted)
def upload_media(
    storage: StorageDep, settings: SettingsDep,
    file: Annotated[UploadFile, File(description="An image, audio, video or JSON file.")],
) -> UploadAccepted:
    """Store a file by its content hash and queue its ingest job; the same bytes twice give one record.
    The file streams to disk (hashed on the way) up to GATEWAY_MAX_UPLOAD_BYTES; images and JSON, which are
    decoded whole, up to GATEWAY_MAX_IN_MEMORY_BYTES. A refused upload leaves no file and no record."""
    with storage.store.incoming() as incoming:
        copy_capped(file, incoming, settings.max_upload_bytes)
        detected = detect_file(incoming.path, max_image_pixels=settings.max_image_pixels,
                               max_in_memory_bytes=settings.max_in_memory_bytes)
        return accept_upload(storage, incoming, detected, file.filename, settings.job_max_attempts)


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


@router.get("/v1/media", response_model=MediaList)
def list_media(
    storage: StorageDep, filters: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> MediaList:
    """The library, newest first: uploaded items (not the frames sampled from videos) with label and caption,
    filtered as `/v1/search` filters (kind, label, upload time, and the photo's EXIF capture time, camera and
    position: items without that metadata do not match those)."""
    page = storage.media.page(filters, limit=limit, offset=offset)
    return MediaList.from_page(page, limit=limit, offset=offset)


@router.get("/v1/media/{media_id}/thumbnail", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}}})
def get_thumbnail(
    media_id: str, storage: StorageDep,
    size: Annotated[int, Query(ge=16, le=SIZES[-1], description=f"Longest edge; snapped up to one of {SIZES}.")]
    = 256,
) -> FileResponse:
    """A JPEG thumbnail of an image, or of a video's first sampled frame; made once, then served from disk."""
    media = _media(storage, media_id)
    poster = storage.media.poster(media)
    if poster is None:
        raise NotFound(f"media {media_id} is {media.kind}: it has no picture to make a thumbnail of"
                       if media.kind != "video" else f"video {media_id} has no sampled frame yet")
    path = storage.thumbnails.get(poster.sha256, size)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/v1/media/{media_id}/file", response_class=FileResponse)
def get_file(media_id: str, storage: StorageDep) -> FileResponse:
    """The original bytes, with the content type found at upload (the path comes from the stored hash)."""
    media = _media(storage, media_id)
    return FileResponse(storage.store.path(media.sha256), media_type=media.mime,
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400"})


@router.get("/v1/media/{media_id}", response_model=MediaDetail)
def get_media(media_id: str, storage: StorageDep) -> MediaDetail:
    return _detail(storage, media_id)


@router.delete("/v1/media/{media_id}", status_code=204, response_class=Response)
def delete_media(media_id: Annotated[str, Path(pattern=RECORD_ID)], storage: StorageDep) -> Response:
    """Delete an item: its results, vectors, jobs and sampled frames, and its stored bytes and thumbnails
    unless another record shares them. Its queued jobs are skipped and a running one stops at its next
    stage. A second delete of the same id answers 404."""
    unused = storage.media.remove(media_id)
    if unused is None:
        raise NotFound(f"no media with id {media_id} (deleted already?)")
    for sha256 in unused:
        if storage.media.by_sha256(sha256) is None:  # the same bytes uploaded again meanwhile keep their file
            storage.store.delete(sha256)
            storage.thumbnails.delete(sha256)
    return Response(status_code=204)


@router.get("/v1/jobs", response_model=JobList)
def list_jobs(
    storage: StorageDep, state: JobState | None = None, kind: JobKind | None = None,
    media_id: Annotated[str | None, Query(pattern=RECORD_ID, description="Only this item's jobs.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> JobList:
    """Jobs, newest first, filtered by state, kind and media item."""
    page = storage.jobs.page(JobFilters(state, kind, media_id), limit=limit, offset=offset)
    return JobList(items=[JobPublic.model_validate(job) for job in page.items], total=page.total,
                   limit=limit, offset=offset)


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: Annotated[str, Path(pattern=RECORD_ID)], storage: StorageDep) -> JobPublic:
    """Cancel a job: a queued (or retrying) one never runs, a running one stops at its next stage.
    Cancelling a cancelled job answers it again; one that already ended (done, failed) is a 409."""
    try:
        job = storage.jobs.cancel(job_id)
    except JobFinished as exc:
        raise Conflict(f"job {job_id} has already ended ({exc.state}): there is nothing to cancel") from exc
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return JobPublic.model_validate(job)


@router.get("/v1/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: str, storage: StorageDep) -> JobPublic:
    job = storage.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    return JobPublic.model_validate(job)


def _media(storage: Storage, media_id: str) -> Media:
    media = storage.media.get(media_id)
    if media is None:
        raise NotFound(f"no media with id {media_id}")
    return media


def _detail(storage: Storage, media_id: str) -> MediaDetail:
    record = storage.media.record(media_id)
    if record is None:
        raise NotFound(f"no media with id {media_id}")
    return MediaDetail.from_record(record)
