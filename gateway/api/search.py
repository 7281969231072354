"""`GET /v1/search` (text → CLIP → nearest images, plus transcript/caption full-text search, fused into
one ranking) and `POST /v1/search/image` (similar images to an upload or a stored item).

CLIP is called in process through the dispatcher, behind the memory budget like every model
call: a cold CLIP is loaded on demand, or the answer is 503 + Retry-After when no room is made.
Database work (`storage.search`, one unit of work per query) runs on a worker thread, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import SettingsDep, StorageDep
from gateway.api.detect import detect
from gateway.api.filters import FiltersDep
from gateway.api.media import read_capped
from gateway.api.schemas import EmbeddingSpacePublic, SearchHit, SearchResponse
from gateway.dispatch.dispatcher import DispatcherDep, ServiceDispatcher
from gateway.settings import GatewaySettings
from shared.http.errors import BadInput, NotFound, ServiceError, Unavailable
from shared.schemas.clip import EmbedResponse
from storage import search
from storage.runtime import Storage
from storage.spaces import SpaceIdentity

router = APIRouter(tags=["search"])


def _hits(hits: list[search.Hit]) -> list[SearchHit]:
    return [SearchHit(media_id=hit.media.id, kind=hit.media.kind, mime=hit.media.mime,
                      created_at=hit.media.created_at, match=hit.match, score=hit.score, similarity=hit.similarity,
                      label=hit.label, snippet=hit.snippet, start_s=hit.start_s, parent_id=hit.media.parent_id,
                      taken_at=hit.media.taken_at, camera=hit.media.camera)
            for hit in hits]


async def _clip(dispatcher: ServiceDispatcher, path: str, payload: dict[str, object]) -> EmbedResponse:
    return EmbedResponse.model_validate(await dispatcher.post_json("clip", path, payload))


def _check_depth(limit: int, offset: int) -> None:
    if limit + offset > search.MAX_RANKED_DEPTH:
        raise BadInput(f"ranked results reach {search.MAX_RANKED_DEPTH:,} deep and offset + limit is "
                       f"{offset + limit:,}; narrow the search (kind, label, since, until, taken_after, camera, near) "
                       "instead of paging further")


def _clip_failure(exc: ServiceError) -> str:
    """Worded like a failed stage of the worker: `clip: HTTP 503: <why>`."""
    return f"clip: HTTP {exc.status_code}: {exc.detail.removeprefix('clip: ')}"


@router.get("/v1/search", response_model=SearchResponse)
async def search_media(
    storage: StorageDep, settings: SettingsDep, dispatcher: DispatcherDep,
    filters: FiltersDep,
    q: str | None = Query(None, max_length=1000, description="What to look for, in words."),
    limit: int = Query(20, ge=1, le=200),
    offset: int = Query(0, ge=0, le=10_000, description="Results to skip. With `q`, offset + limit ≤ 1000 (how deep "
                        "the ranking reaches); browsing without `q` pages to 10,000."),
    min_similarity: float | None = Query(None, ge=-1, le=1, description="Drop image hits below this cosine "
                                         "similarity; default GATEWAY_SEARCH_MIN_SIMILARITY (per model)."),
) -> SearchResponse:
    """With `q`: nearest images (CLIP), transcript and caption matches, one list ranked by reciprocal-rank
    fusion. Without: the items matching the filters, newest first. The `taken_*`, `camera` and `near`
    filters read a photo's EXIF: items without that metadata do not match them."""
    q = (q or "").strip() or None
    if q is None:
        browsed = await run_in_threadpool(storage.search.browse, filters, limit=limit, offset=offset)
        return SearchResponse(query=None, results=_hits(browsed), limit=limit, offset=offset)
    _check_depth(limit, offset)
    degraded: list[str] = []
    semantic, floor = None, None
    # the full-text half needs no vector: it runs on a thread while CLIP embeds the query
    text_matches = asyncio.ensure_future(run_in_threadpool(storage.search.text_matches, q, filters,
                                                           depth=limit + offset))
    if filters.kind in (None, "image", "video"):
        try:
            embedded = await _clip(dispatcher, "v1/embed/text", {"texts": [q]})
        except ServiceError as exc:
            degraded.append(_clip_failure(exc) + " (semantic image search skipped; text search still ran)")
        else:
            semantic = _semantic(embedded)
            floor = settings.min_similarity_for(embedded.model) if min_similarity is None else min_similarity
    text = await text_matches
    page = await run_in_threadpool(storage.search.ranked, q, semantic, filters, limit=limit, offset=offset,
                                   ef_search=settings.search_ef, min_similarity=-1.0 if floor is None else floor,
                                   weights=settings.fusion_weights, text=text)
    return SearchResponse(query=q, results=_hits(page.hits), limit=limit, offset=offset, min_similarity=floor,
                          space=_space(page), degraded=degraded + page.degraded)


def _semantic(embedded: EmbedResponse) -> search.SemanticQuery:
    """The query vector, with the space its model's vectors live in."""
    return search.SemanticQuery(embedded.embeddings[0],
                                SpaceIdentity.of(embedded.model, embedded.dim, embedded.weights_sha256))


def _space(page: search.Page) -> EmbeddingSpacePublic | None:
    return None if page.space is None else EmbeddingSpacePublic(**page.space.public())


def _read_image(file: UploadFile, settings: GatewaySettings) -> bytes:
    """The upload's bytes, refused unless it is an image (reading and sniffing block: call on a thread)."""
    data = read_capped(file, settings.max_in_memory_bytes)
    if detect(data, max_image_pixels=settings.max_image_pixels).kind != "image":
        raise BadInput("the uploaded file is not an image; similar-image search needs an image")
    return data


async def _similar(storage: Storage, settings: GatewaySettings, dispatcher: ServiceDispatcher,
                   file: UploadFile | None, media_id: str | None, *, limit: int, offset: int) -> search.Page:
    if media_id is not None:
        if "\x00" in media_id:
            raise BadInput("`media_id` holds a NUL byte; send the id as `GET /v1/media/{id}` shows it")
        page = await run_in_threadpool(storage.search.similar_to_stored, media_id, search.Filters(), limit=limit,
                                       offset=offset, ef_search=settings.search_ef)
        if page is None:
            raise NotFound(f"media {media_id} has no stored CLIP embedding in the searched space (not an image, "
                           "not processed yet, or not re-embedded yet)")
        return page
    assert file is not None  # exactly one of the two, checked by the route
    data = await run_in_threadpool(_read_image, file, settings)
    try:
        embedded = await _clip(dispatcher, "v1/embed/image", {"images": [base64.b64encode(data).decode()]})
    except ServiceError as exc:
        retry_after = int(exc.headers.get("Retry-After", "5"))
        raise Unavailable(f"{_clip_failure(exc)}; similar-image search needs CLIP, retry when it is up",
                          retry_after_s=retry_after) from exc
    return await run_in_threadpool(storage.search.similar, _semantic(embedded), search.Filters(), limit=limit,
                                   offset=offset, ef_search=settings.search_ef)


@router.post("/v1/search/image", response_model=SearchResponse)
async def search_similar(
    storage: StorageDep, settings: SettingsDep, dispatcher: DispatcherDep,
    file: Annotated[UploadFile | None, File()] = None, media_id: Annotated[str | None, Form()] = None,
    limit: Annotated[int, Form(ge=1, le=200)] = 20,
    offset: Annotated[int, Form(ge=0, le=search.MAX_RANKED_DEPTH - 1, description="offset + limit ≤ 1000.")] = 0,
) -> SearchResponse:
    """Images similar to an uploaded image or to a stored item (`media_id`); `score` is the cosine similarity."""
    if (file is None) == (media_id is None):
        raise BadInput("send exactly one of: an image `file`, or the `media_id` of a stored image")
    _check_depth(limit, offset)
    page = await _similar(storage, settings, dispatcher, file, media_id, limit=limit, offset=offset)
    return SearchResponse(query=None, results=_hits(page.hits), limit=limit, offset=offset, space=_space(page),
                          degraded=page.degraded)
