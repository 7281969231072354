"""OpenAI-compatible API at the gateway root: point an OpenAI client at `http://HOST:8000/v1`.

`model` picks the service (`gateway.api.model_names`); each call goes through the dispatcher, so
the memory budget applies as to every other call — a cold model is loaded on demand (evicting
idle ones) or the answer is 503 with Retry-After. Chat, completions and audio pass through to the
services' own OpenAI endpoints unchanged; embeddings are built here from CLIP's. Every error is
in OpenAI's shape (`gateway.api.openai_errors`).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from gateway.api.embeddings import EmbeddingsRequest, EmbeddingsResponse, embed
from gateway.api.model_names import ModelNotFound, alias_table, resolve
from gateway.api.models import model_status
from gateway.api.openai_errors import ERROR_RESPONSES, OpenAIError, OpenAIRoute
from gateway.dispatch.dispatcher import DispatcherDep, ServiceDispatcher, UpstreamError
from shared.http.errors import BadInput, ErrorDetail, error_detail
from shared.schemas.gateway import ModelStatus

router = APIRouter(tags=["openai"], route_class=OpenAIRoute, responses=ERROR_RESPONSES)

JSON_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}
AUDIO_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "model"],
    "properties": {"file": {"type": "string", "format": "binary"}, "model": {"type": "string"},
                   "prompt": {"type": "string"}, "response_format": {"type": "string"},
                   "temperature": {"type": "number"}, "language": {"type": "string"}}}}}}}


async def forward(dispatcher: ServiceDispatcher, service: str, path: str, request: Request, content: bytes) -> Response:
    """Send the body on unchanged; the service's own error answers become OpenAI errors."""
    upstream = await dispatcher.open(service, path, content=content, headers=request.headers)
    if upstream.status_code >= 400:
        raise UpstreamError(service, upstream.status_code, error_detail(await upstream.body()), upstream.headers)
    if upstream.content_type.startswith("text/event-stream"):
        # closed when the stream ends or the client goes away: the model is released either way
        return StreamingResponse(upstream.stream(), status_code=upstream.status_code, headers=upstream.headers,
                                 background=BackgroundTask(upstream.close))
    return Response(await upstream.body(), status_code=upstream.status_code, headers=upstream.headers)


def json_object(content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise BadInput(f"the body is not valid JSON ({exc}); send a JSON object") from exc
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


async def forward_json(request: Request, dispatcher: ServiceDispatcher, path: str, what: str) -> Response:
    content = await request.body()
    service = resolve(dispatcher.registry, json_object(content).get("model"), "llm", what)
    return await forward(dispatcher, service, path, request, content)


@router.post("/v1/chat/completions", summary="Chat completion (OpenAI), streamed with `stream: true`",
             response_model=None, openapi_extra=JSON_BODY)
async def chat_completions(request: Request, dispatcher: DispatcherDep) -> Response:
    return await forward_json(request, dispatcher, "v1/chat/completions", "chat completions")


@router.post("/v1/completions", summary="Text completion (OpenAI)", response_model=None, openapi_extra=JSON_BODY)
async def completions(request: Request, dispatcher: DispatcherDep) -> Response:
    return await forward_json(request, dispatcher, "v1/completions", "completions")


async def forward_audio(request: Request, dispatcher: ServiceDispatcher, path: str, what: str) -> Response:
    content = await request.body()
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadInput(f"{what} take a multipart/form-data upload with `file` and `model`")
    async with request.form() as form:  # read from the body above, which is forwarded as it came
        if not isinstance(form.get("file"), UploadFile):
            raise BadInput("the upload has no `file` part; send the audio or video file as `file`")
        service = resolve(dispatcher.registry, form.get("model"), "whisper", what)
    return await forward(dispatcher, service, path, request, content)


@router.post("/v1/audio/transcriptions", summary="Speech to text (OpenAI)", response_model=None,
             openapi_extra=AUDIO_BODY)
async def transcriptions(request: Request, dispatcher: DispatcherDep) -> Response:
    return await forward_audio(request, dispatcher, "v1/audio/transcriptions", "transcriptions")


@router.post("/v1/audio/translations", summary="Speech in any language to English text (OpenAI)",
             response_model=None, openapi_extra=AUDIO_BODY)
async def translations(request: Request, dispatcher: DispatcherDep) -> Response:
    return await forward_audio(request, dispatcher, "v1/audio/translations", "translations")


@router.post("/v1/embeddings", summary="CLIP embeddings of texts and images (OpenAI)")
async def embeddings(body: EmbeddingsRequest, dispatcher: DispatcherDep) -> EmbeddingsResponse:
    return await embed(dispatcher, resolve(dispatcher.registry, body.model, "clip", "embeddings"), body)


@router.get("/v1/models/{model:path}", summary="One model (OpenAI's retrieve): a service name or an alias",
            response_model=ModelStatus, responses={404: {
                "model": OpenAIError | ErrorDetail,  # the router's own 404 (a path it cannot match) has `detail`
                "description": "No such model (`model_not_found`), or a path no route matches."}})
async def retrieve_model(model: str, dispatcher: DispatcherDep) -> ModelStatus:
    registry = dispatcher.registry
    service = model if model in registry.records else alias_table(registry).get(model)
    if service is None:
        raise ModelNotFound(f"The model '{model}' does not exist; GET /v1/models lists the models")
    return model_status(registry, registry.budget.slots[service])
