"""`GET /v1/search` (text → CLIP → nearest images, plus transcript/caption full-text search) and
`POST /v1/search/image` (similar images to an upload or a stored item)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from gateway.api.deps import SettingsDep, StorageDep, models_url
from gateway.api.detect import detect
from gateway.api.media import read_capped
from gateway.api.schemas import SearchHit, SearchResponse
from shared.http.errors import BadInput, NotFound, Unavailable
from storage import search
from storage.settings import StorageSettings
from worker.model_client import GatewayUnreachable, ModelClient, StageFailed

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


def _clip(request: Request, settings: StorageSettings, path: str, payload: dict) -> list[float]:
    client = ModelClient(models_url(request, settings), timeout_s=120.0, busy_retries=1, api_key=settings.api_key,
                         gateway_wait_s=0.0)
    try:
        return client.call("clip", path, payload)["embeddings"][0]
    except GatewayUnreachable as exc:
        raise StageFailed("clip", str(exc)) from exc
    finally:
        client.close()


@router.get("/v1/search", response_model=SearchResponse)
def search_media(
    request: Request, storage: StorageDep, settings: SettingsDep,
    q: str | None = Query(None, max_length=1000, description="What to look for, in words."),
    kind: Kind | None = None, label: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
    limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0, le=10_000),
) -> SearchResponse:
    filters = search.Filters(kind, label, since, until)
    degraded: list[str] = []
    hits: list[search.Hit] = []
    q = (q or "").strip() or None
    if q is None:
        with storage.db.session() as session:
            hits = search.browse(session, filters, limit=limit, offset=offset)
        return SearchResponse(query=None, results=_hits(hits), limit=limit, offset=offset)
    if kind in (None, "image", "video"):
        try:
            vector = _clip(request, settings, "v1/embed/text", {"texts": [q]})
            with storage.db.session() as session:
                hits += search.nearest_images(session, vector, filters, limit=limit, offset=offset,
                                              ef_search=settings.search_ef)
        except StageFailed as exc:
            degraded.append(exc.reason + " (semantic image search skipped; text search still ran)")
    with storage.db.session() as session:
        hits += search.transcript_matches(session, q, filters, limit=limit, offset=offset)
        hits += search.caption_matches(session, q, filters, limit=limit, offset=offset)
    return SearchResponse(query=q, results=_hits(hits), limit=limit, offset=offset, degraded=degraded)


@router.post("/v1/search/image", response_model=SearchResponse)
def search_similar(
    request: Request, storage: StorageDep, settings: SettingsDep, file: Annotated[UploadFile | None, File()] = None,
    media_id: Annotated[str | None, Form()] = None,
    limit: Annotated[int, Form(ge=1, le=200)] = 20, offset: Annotated[int, Form(ge=0)] = 0,
) -> SearchResponse:
    """Images similar to an uploaded image or to a stored item (`media_id`)."""
    if (file is None) == (media_id is None):
        raise BadInput("send exactly one of: an image `file`, or the `media_id` of a stored image")
    if media_id is not None:
        with storage.db.session() as session:
            vector = search.stored_embedding(session, media_id)
        if vector is None:
            raise NotFound(f"media {media_id} has no stored CLIP embedding (not an image, or not processed yet)")
    else:
        data = read_capped(file, settings.max_upload_bytes)  # type: ignore[arg-type]
        if detect(data, max_image_pixels=settings.max_image_pixels).kind != "image":
            raise BadInput("the uploaded file is not an image; similar-image search needs an image")
        try:
            vector = _clip(request, settings, "v1/embed/image", {"images": [base64.b64encode(data).decode()]})
        except StageFailed as exc:
            raise Unavailable(f"{exc.reason}; similar-image search needs CLIP, retry when it is up") from exc
    with storage.db.session() as session:
        hits = search.nearest_images(session, vector, search.Filters(), limit=limit, offset=offset,
                                     ef_search=settings.search_ef, exclude=media_id)
    return SearchResponse(query=None, results=_hits(hits), limit=limit, offset=offset)

