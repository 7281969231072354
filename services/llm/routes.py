"""llm task routes: free generation and the two structured tasks (JSON schema analysis, cluster enrichment)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from services.llm import tasks
from services.llm.decoding import SamplingParams
from services.llm.model import Completion, LlmModel
from services.llm.structured import JsonSchemaLogitsProcessor, max_json_chars, parse_document
from shared.http.errors import BadInput
from shared.kit.service import LifecycleDep
from shared.schemas.llm import (
    AnalyzeJsonSchemaRequest,
    EnrichClusterRequest,
    EnrichClusterResponse,
    GenerateRequest,
    GenerateResponse,
    JsonSchemaAnalysis,
)

router = APIRouter(tags=["llm"])


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def check_budget(model: LlmModel, prompt_ids: list[int], max_tokens: int) -> None:
    """Refuse requests the service is configured not to run, saying which limit and how to change it."""
    limits = model.settings
    if max_tokens > limits.max_new_tokens:
        raise BadInput(f"max_tokens {max_tokens} is above this service's limit of {limits.max_new_tokens} "
                       "(LLM_MAX_NEW_TOKENS); ask for fewer")
    if len(prompt_ids) > limits.max_prompt_tokens:
        raise BadInput(f"the prompt is {len(prompt_ids)} tokens, above the limit of {limits.max_prompt_tokens} "
                       "(LLM_MAX_PROMPT_TOKENS); shorten it")


def structured(model: LlmModel, messages: list[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
    """Blocking: greedy generation constrained to `schema`, returned parsed."""
    prompt = model.chat_ids(messages)
    check_budget(model, prompt, 1)
    processor = JsonSchemaLogitsProcessor(model.enforcer_data(), schema, len(prompt))
    params = SamplingParams(max_new_tokens=max_json_chars(schema), temperature=0)
    return parse_document(model.complete(prompt, params, logits_processor=processor).text)


def generate_blocking(model: LlmModel, body: GenerateRequest) -> Completion:
    ids = model.chat_ids([{"role": "user", "content": body.prompt}]) if body.chat else model.text_ids(body.prompt)
    check_budget(model, ids, body.max_tokens)
    params = SamplingParams(body.max_tokens, body.temperature, body.top_p, tuple(body.stop_sequences))
    return model.complete(ids, params)


@router.post("/generate")
async def generate(body: GenerateRequest, lifecycle: LifecycleDep) -> GenerateResponse:
    started = time.perf_counter()
    async with lifecycle.use() as model:
        done = await lifecycle.run(generate_blocking, model, body)
    return GenerateResponse(text=done.text, tokens_generated=done.completion_tokens,
                            finish_reason=done.finish_reason, processing_time_ms=elapsed_ms(started))


@router.post("/analyze-json-schema")
async def analyze_json_schema(body: AnalyzeJsonSchemaRequest, lifecycle: LifecycleDep) -> JsonSchemaAnalysis:
    started = time.perf_counter()
    samples: list[dict[str, Any]] = body.json_samples
    async with lifecycle.use() as model:
        names = tasks.draft_names(tasks.field_names(samples))
        schema = tasks.schema_analysis_draft(model.settings, list(names))
        messages = tasks.schema_analysis_messages(samples, body.user_comment, names)
        draft = await lifecycle.run(structured, model, messages, schema)
    return JsonSchemaAnalysis(**tasks.schema_analysis_answer(draft, names), processing_time_ms=elapsed_ms(started))


@router.post("/enrich-cluster")
async def enrich_cluster(body: EnrichClusterRequest, lifecycle: LifecycleDep) -> EnrichClusterResponse:
    started = time.perf_counter()
    async with lifecycle.use() as model:
        schema = tasks.enrich_draft(model.settings)
        messages = tasks.enrich_messages(body.cluster_name, body.description, body.sample_captions)
        draft = await lifecycle.run(structured, model, messages, schema)
    answer = tasks.enrich_answer(draft, body.cluster_name)
    return EnrichClusterResponse(**answer, processing_time_ms=elapsed_ms(started))
