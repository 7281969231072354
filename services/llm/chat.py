"""OpenAI-compatible `POST /v1/chat/completions`, plain and streamed (server-sent events)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from services.llm.decoding import AsyncTextStreamer, SamplingParams, TextDeltas
from services.llm.model import Completion, LlmModel
from services.llm.routes import check_budget
from services.llm.structured import JsonSchemaLogitsProcessor
from shared.http.errors import BadInput
from shared.kit.lifecycle import ModelLifecycle
from shared.kit.service import LifecycleDep
from shared.kit.tasks import Task
from shared.schemas.llm import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
)

router = APIRouter(tags=["openai"])
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


Prepared = tuple[list[int], SamplingParams, Any]


def prepare(model: LlmModel, body: ChatCompletionRequest) -> Prepared:
    """Prompt ids, sampling parameters and (for response_format) a JSON constraint, or a 422."""
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
    if messages[-1]["role"] == "assistant":
        raise BadInput("the last message is the assistant's; end with a user (or system) message")
    ids = model.chat_ids(messages)
    max_tokens = body.max_completion_tokens or body.max_tokens or model.settings.default_max_tokens
    check_budget(model, ids, max_tokens)
    params = SamplingParams(max_tokens, body.temperature, body.top_p, tuple(body.stop_list()))
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return ids, params, None
    schema = fmt.json_schema.schema_ if fmt.type == "json_schema" and fmt.json_schema else ANY_JSON_OBJECT
    try:
        constraint = JsonSchemaLogitsProcessor(model.enforcer_data(), schema, len(ids))
    except Exception as exc:  # lm-format-enforcer rejects schemas it cannot enforce with assorted errors
        raise BadInput(f"response_format.json_schema.schema cannot be enforced: {type(exc).__name__}: {exc}") from exc
    return ids, params, constraint


def _chunk(cid: str, created: int, model: str, delta: Delta, finish: str | None = None) -> str:
    choice = ChunkChoice(delta=delta, finish_reason=finish)  # type: ignore[arg-type]
    chunk = ChatCompletionChunk(id=cid, created=created, model=model, choices=[choice])
    return f"data: {chunk.model_dump_json(exclude_none=False)}\n\n"


async def stream(
    lifecycle: ModelLifecycle[LlmModel], body: ChatCompletionRequest, request: Request
) -> AsyncIterator[str]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    cancelled = threading.Event()
    async with lifecycle.use() as model:
        name = body.model or model.settings.name
        ids, params, constraint = await lifecycle.run(prepare, model, body)
        streamer = AsyncTextStreamer(TextDeltas(model.tokenizer, params.stop), asyncio.get_running_loop())
        job = asyncio.ensure_future(lifecycle.run(
            lambda: model.complete(ids, params, logits_processor=constraint, streamer=streamer, cancelled=cancelled)
        ))
        job.add_done_callback(lambda _: streamer.queue.put_nowait(None))  # ends the loop below on errors too
        yield _chunk(cid, created, name, Delta(role="assistant", content=""))
        try:
            while (piece := await streamer.queue.get()) is not None:
                yield _chunk(cid, created, name, Delta(content=piece))
                if await request.is_disconnected():
                    cancelled.set()
            done: Completion = await job
        finally:
            cancelled.set()
        yield _chunk(cid, created, name, Delta(), done.finish_reason)
        if body.stream_options is not None and body.stream_options.include_usage:
            usage = ChatCompletionChunk(id=cid, created=created, model=name, choices=[], usage=usage_of(done))
            yield f"data: {usage.model_dump_json()}\n\n"
        yield "data: [DONE]\n\n"


def chat_complete(model: LlmModel, body: ChatCompletionRequest, prepared: Prepared) -> Completion:
    ids, params, constraint = prepared
    return model.complete(ids, params, logits_processor=constraint)


def chat_answer(model: LlmModel, body: ChatCompletionRequest, done: Completion) -> ChatCompletion:
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=body.model or model.settings.name,
        choices=[Choice(message=AssistantMessage(content=done.text), finish_reason=done.finish_reason)],  # type: ignore[arg-type]
        usage=usage_of(done),
    )


def usage_of(done: Completion) -> Usage:
    return Usage(prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens,
                 total_tokens=done.prompt_tokens + done.completion_tokens)


CHAT = Task(decode=prepare, predict=chat_complete, encode=chat_answer)
# fail before a stream starts (503 not loaded, 422 limits) so the client sees a proper status
CHECK_CHAT = Task(decode=prepare, encode=lambda model, body, prepared: None)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, lifecycle: LifecycleDep, request: Request
) -> ChatCompletion | StreamingResponse:
    if body.stream:
        await CHECK_CHAT.run(lifecycle, body)
        return StreamingResponse(stream(lifecycle, body, request), media_type="text/event-stream")
    answer: ChatCompletion = await CHAT.run(lifecycle, body)
    return answer


@router.get("/v1/models")
async def list_models(lifecycle: LifecycleDep) -> dict[str, Any]:
    """OpenAI's model list: the one model this service serves (loaded or not)."""
    return {"object": "list", "data": [{"id": lifecycle.name, "object": "model", "created": 0,
                                        "owned_by": "mediamesh", "state": lifecycle.state}]}
