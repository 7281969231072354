"""`GET /v1/search` (text → CLIP → nearest images, plus transcript/caption full-text search) and
`POST /v1/search/image` (similar images to an upload or a stored item).

CLIP is called in process through the dispatcher, behind the memory budget like every model
call: a cold CLIP is loaded on demand, or the answer is 503 + Retry-After when no room is made.
Database work (`storage.search`, one unit of work per query) runs on a worker thread, never on
the event loop.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import SettingsDep, StorageDep
from gateway.api.detect import detect
from gateway.api.media import read_capped
from gateway.api.schemas import SearchHit, SearchResponse
from gateway.dispatch.dispatcher import DispatcherDep, ServiceDispatcher
from gateway.settings import GatewaySettings
from shared.http.errors import BadInput, NotFound, ServiceError, Unavailable
from shared.schemas.clip import EmbedResponse
from storage import search
from storage.runtime import Storage

router = APIRouter(tags=["search"])
Kind = Literal["image", "audio", "video", "json"]


def _hits(hits: list[search.Hit]) -> list[SearchHit]:
    """One result per item, in order of first appearance; a later text match lends its snippet."""
    seen: dict[str, SearchHit] = {}
    out = []
    for hit in hits:
        if hit.media.id in seen:
            seen[hit.media.id].snippet = seen[hit.media.id].snippet or hit.snippet
            continue
        seen[hit.media.id] = SearchHit(media_id=hit.media.id, kind=hit.media.kind, mime=hit.media.mime,
                             created_at=hit.media.created_at, match=hit.match, score=hit.score, label=hit.label,
                             snippet=hit.snippet, parent_id=hit.media.parent_id)
        out.append(seen[hit.media.id])
    return out


async def _clip(dispatcher: ServiceDispatcher, path: str, payload: dict[str, object]) -> list[float]:
    answer = await dispatcher.post_json("clip", path, payload)
    return EmbedResponse.model_validate(answer).embeddings[0]


def _clip_failure(exc: ServiceError) -> str:
    """Worded like a failed stage of the worker: `clip: HTTP 503: <why>`."""
    return f"clip: HTTP {exc.status_code}: {exc.detail.removeprefix('clip: ')}"


@router.get("/v1/search", response_model=SearchResponse)
async def search_media(
    storage: StorageDep, settings: SettingsDep, dispatcher: DispatcherDep,
    q: str | None = Query(None, max_length=1000, description="What to look for, in words."),
    kind: Kind | None = None, label: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
    limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=10_000),
) -> SearchResponse:
    filters = search.Filters(kind, label, since, until)
    q = (q or "").strip() or None
    if q is None:
        browsed = await run_in_threadpool(storage.search.browse, filters, limit=limit, offset=offset)
        return SearchResponse(query=None, results=_hits(browsed), limit=limit, offset=offset)
    degraded: list[str] = []
    hits: list[search.Hit] = []
    if kind in (None, "image", "video"):
        try:
            vector = await _clip(dispatcher, "v1/embed/text", {"texts": [q]})
        except ServiceError as exc:
            degraded.append(_clip_failure(exc) + " (semantic image search skipped; text search still ran)")
        else:
            hits += await run_in_threadpool(storage.search.nearest_images, vector, filters, limit=limit,
                                            offset=offset, ef_search=settings.search_ef)
    hits += await run_in_threadpool(storage.search.text_matches, q, filters, limit=limit, offset=offset)
    return SearchResponse(query=q, results=_hits(hits), limit=limit, offset=offset, degraded=degraded)


def _read_image(file: UploadFile, settings: GatewaySettings) -> bytes:
    """The upload's bytes, refused unless it is an image (reading and sniffing block: call on a thread)."""
    data = read_capped(file, settings.max_upload_bytes)
    if detect(data, max_image_pixels=settings.max_image_pixels).kind != "image":
        raise BadInput("the uploaded file is not an image; similar-image search needs an image")
    return data


async def _query_vector(storage: Storage, settings: GatewaySettings, dispatcher: ServiceDispatcher,
                        file: UploadFile | None, media_id: str | None) -> list[float]:
    if media_id is not None:
        stored = await run_in_threadpool(storage.search.stored_embedding, media_id)
        if stored is None:
            raise NotFound(f"media {media_id} has no stored CLIP embedding (not an image, or not processed yet)")
        return stored
    assert file is not None  # exactly one of the two, checked by the route
    data = await run_in_threadpool(_read_image, file, settings)
    try:
        return await _clip(dispatcher, "v1/embed/image", {"images": [base64.b64encode(data).decode()]})
    except ServiceError as exc:
        retry_after = int(exc.headers.get("Retry-After", "5"))
        raise Unavailable(f"{_clip_failure(exc)}; similar-image search needs CLIP, retry when it is up",
                          retry_after_s=retry_after) from exc


@router.post("/v1/search/image", response_model=SearchResponse)
async def search_similar(
    storage: StorageDep, settings: SettingsDep, dispatcher: DispatcherDep,
    file: Annotated[UploadFile | None, File()] = None, media_id: Annotated[str | None, Form()] = None,
    limit: Annotated[int, Form(ge=1, le=200)] = 20, offset: Annotated[int, Form(ge=0)] = 0,
) -> SearchResponse:
    """Images similar to an uploaded image or to a stored item (`media_id`)."""
    if (file is None) == (media_id is None):
        raise BadInput("send exactly one of: an image `file`, or the `media_id` of a stored image")
    vector = await _query_vector(storage, settings, dispatcher, file, media_id)
    hits = await run_in_threadpool(storage.search.nearest_images, vector, search.Filters(), limit=limit,
                                   offset=offset, ef_search=settings.search_ef, exclude=media_id)
    return SearchResponse(query=None, results=_hits(hits), limit=limit, offset=offset)
