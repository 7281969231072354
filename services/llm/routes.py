"""llm task routes: free generation and the two structured tasks (JSON schema analysis, cluster enrichment)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.llm import tasks
from services.llm.decoding import SamplingParams
from services.llm.model import Completion, LlmModel
from services.llm.structured import JsonSchemaLogitsProcessor, max_json_chars, parse_document
from shared.http.errors import BadInput
from shared.kit.tasks import TaskRouter
from shared.schemas.llm import (
    AnalyzeJsonSchemaRequest,
    EnrichClusterRequest,
    EnrichClusterResponse,
    GenerateRequest,
    GenerateResponse,
    JsonSchemaAnalysis,
)

router = TaskRouter(tags=["llm"])


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


def prompt_ids(model: LlmModel, body: GenerateRequest) -> list[int]:
    ids = model.chat_ids([{"role": "user", "content": body.prompt}]) if body.chat else model.text_ids(body.prompt)
    check_budget(model, ids, body.max_tokens)
    return ids


def complete(model: LlmModel, body: GenerateRequest, ids: list[int]) -> Completion:
    params = SamplingParams(body.max_tokens, body.temperature, body.top_p, tuple(body.stop_sequences))
    return model.complete(ids, params)


@dataclass(frozen=True)
class StructuredPrompt:
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    names: dict[str, str] = field(default_factory=dict)  # draft name → real key (schema analysis)


def schema_analysis_prompt(model: LlmModel, body: AnalyzeJsonSchemaRequest) -> StructuredPrompt:
    samples: list[dict[str, Any]] = body.json_samples
    names = tasks.draft_names(tasks.field_names(samples))
    return StructuredPrompt(tasks.schema_analysis_messages(samples, body.user_comment, names),
                            tasks.schema_analysis_draft(model.settings, list(names)), names)


def enrich_prompt(model: LlmModel, body: EnrichClusterRequest) -> StructuredPrompt:
    messages = tasks.enrich_messages(body.cluster_name, body.description, body.sample_captions)
    return StructuredPrompt(messages, tasks.enrich_draft(model.settings))


def write_draft(model: LlmModel, body: object, prompt: StructuredPrompt) -> tuple[StructuredPrompt, dict[str, Any]]:
    return prompt, structured(model, prompt.messages, prompt.schema)


@router.task("/v1/generate", decode=prompt_ids, predict=complete, aliases=["/generate"])
def generate(model: LlmModel, body: GenerateRequest, done: Completion) -> GenerateResponse:
    """Free generation from a prompt (raw, or as one chat turn)."""
    return GenerateResponse(text=done.text, tokens_generated=done.completion_tokens, finish_reason=done.finish_reason)


@router.task("/v1/analyze-json-schema", decode=schema_analysis_prompt, predict=write_draft,
             aliases=["/analyze-json-schema"])
def analyze_json_schema(
    model: LlmModel, body: AnalyzeJsonSchemaRequest, drafted: tuple[StructuredPrompt, dict[str, Any]]
) -> JsonSchemaAnalysis:
    """A table name, storage type, field descriptions and indexes for sample JSON documents."""
    prompt, draft = drafted
    return JsonSchemaAnalysis(**tasks.schema_analysis_answer(draft, prompt.names))


@router.task("/v1/enrich-cluster", decode=enrich_prompt, predict=write_draft, aliases=["/enrich-cluster"])
def enrich_cluster(
    model: LlmModel, body: EnrichClusterRequest, drafted: tuple[StructuredPrompt, dict[str, Any]]
) -> EnrichClusterResponse:
    """A category hierarchy, folder path, tags, relationships and search text for a named cluster."""
    return EnrichClusterResponse(**tasks.enrich_answer(drafted[1], body.cluster_name))
