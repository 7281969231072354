"""`POST /v1/classify` (base64 JSON), `POST /v1/classify/upload` (multipart), `GET|PUT /v1/cascade/config`."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from gateway.cascade.engine import CascadeEngine
from gateway.cascade.store import CascadeStore
from gateway.dispatch.dispatcher import ServiceDispatcher
from shared.cascade.config import CascadeConfig
from shared.http.errors import BadInput
from shared.imaging import check_image, decode_base64
from shared.schemas.gateway import ClassifyRequest, ClassifyResponse

router = APIRouter(tags=["cascade"])
log = logging.getLogger("mediamesh.cascade")


async def _classify(request: Request, raw: bytes, variant: str | None, request_id: str | None,
                    mode: str, image: str | None = None, keep_alive: float | None = None) -> ClassifyResponse:
    settings = request.app.state.settings
    # refuse what is not an image, or too large, before any model is held: the header says so (microseconds,
    # on the event loop); the one full decode happens in the service, which answers 400 for a damaged body
    check_image(raw, max_pixels=settings.max_image_pixels)
    store: CascadeStore = request.app.state.cascade
    rid = request_id or hashlib.sha256(raw).hexdigest()[:16]
    name, chosen = store.pick(rid, variant)
    dispatcher: ServiceDispatcher = request.app.state.dispatcher
    engine = CascadeEngine(functools.partial(dispatcher.post_json, keep_alive_s=keep_alive),
                           max_image_pixels=settings.max_image_pixels)
    image = image or base64.b64encode(raw).decode("ascii")
    answer = await engine.classify(image, chosen, variant_name=name, request_id=rid, mode=mode)
    if mode != "always":  # calibration's collection runs would skew the A/B counts
        await record(request, answer)
    return answer


async def record(request: Request, answer: ClassifyResponse) -> None:
    """Count the answer and store it for the A/B report; a database that fails does not fail the answer."""
    request.app.state.cascade_metrics.observe(answer)
    storage = getattr(request.app.state, "storage", None)
    if storage is None:
        return
    try:
        await run_in_threadpool(storage.classify_results.record, answer)
    except Exception:
        log.exception("could not store the classify result of request %s", answer.request_id)


@router.post("/v1/classify", response_model=ClassifyResponse)
async def classify(body: ClassifyRequest, request: Request) -> ClassifyResponse:
    """The cascade: cnn, then CLIP re-ranking, then BLIP-2 for the least certain, with the trace."""
    raw = decode_base64(body.image)
    plain = body.image.split(",", 1)[1] if body.image.startswith("data:") else body.image
    return await _classify(request, raw, body.variant, body.request_id, body.mode, plain, body.keep_alive)


@router.post("/v1/classify/upload", response_model=ClassifyResponse)
async def classify_upload(
    request: Request,
    file: Annotated[UploadFile, File(description="The image file.")],
    variant: Annotated[str | None, Form()] = None,
    request_id: Annotated[str | None, Form()] = None,
    mode: Annotated[Literal["auto", "always", "never"], Form()] = "auto",
    keep_alive: Annotated[float | None, Form(allow_inf_nan=False)] = None,
) -> ClassifyResponse:
    raw = await file.read()
    if not raw:
        raise BadInput(f"uploaded file {file.filename!r} is empty")
    return await _classify(request, raw, variant, request_id, mode, keep_alive=keep_alive)


@router.get("/v1/cascade/config", response_model=CascadeConfig)
async def get_config(request: Request) -> CascadeConfig:
    return request.app.state.cascade.config


@router.put("/v1/cascade/config", response_model=CascadeConfig)
async def put_config(config: CascadeConfig, request: Request) -> CascadeConfig:
    """Replace the configuration (validated: a bad one is refused with 422 and nothing changes)."""
    known = set(request.app.state.registry.records)
    unknown = sorted(config.services() - known)
    if unknown:
        raise BadInput(f"stages name unknown service(s) {unknown}; known services: {sorted(known)}")
    request.app.state.cascade.replace(config)
    return config
