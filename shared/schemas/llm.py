"""llm service: `/generate`, OpenAI-compatible `/v1/chat/completions`, `/analyze-json-schema`, `/enrich-cluster`."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.schemas.common import TimedResponse

IDENTIFIER = r"^[a-z_][a-z0-9_]{0,62}$"
FOLDER_PATH = r"^/([a-z0-9_]+/)+$"


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=100_000)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2, description="0 means greedy decoding.")
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop_sequences: list[str] = Field(default_factory=list, max_length=8)
    chat: bool = Field(default=True, description="Wrap the prompt as one user turn in the model's chat template.")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt is blank; send the text the model should continue or answer")
        return value

    @field_validator("stop_sequences")
    @classmethod
    def _no_empty_stop(cls, values: list[str]) -> list[str]:
        if any(not v for v in values):
            raise ValueError("stop_sequences must not contain empty strings")
        return values


class GenerateResponse(TimedResponse):
    text: str
    tokens_generated: int
    finish_reason: Literal["stop", "length"]


class AnalyzeJsonSchemaRequest(BaseModel):
    json_samples: list[Any] = Field(min_length=1, max_length=20, description="Documents (objects or JSON text).")
    user_comment: str = Field(default="", max_length=2000)

    @field_validator("json_samples")
    @classmethod
    def _objects(cls, samples: list[Any]) -> list[dict[str, Any]]:
        return [_sample_object(i, sample) for i, sample in enumerate(samples)]


def _sample_object(index: int, sample: Any) -> dict[str, Any]:
    if isinstance(sample, str):
        try:
            sample = json.loads(sample)
        except json.JSONDecodeError as exc:
            raise ValueError(f"json_samples[{index}] is not valid JSON ({exc.msg} at char {exc.pos})") from exc
    if not isinstance(sample, dict):
        raise ValueError(f"json_samples[{index}] is a {type(sample).__name__}; each sample must be a JSON object")
    if not sample:
        raise ValueError(f"json_samples[{index}] is an empty object; send documents with at least one field")
    return sample


class JsonSchemaAnalysis(TimedResponse):
    table_name: str = Field(pattern=IDENTIFIER)
    storage_type: Literal["sql", "jsonb"]
    reasoning: str = Field(max_length=2000)
    fields: dict[str, str] = Field(description="Field name → what it holds.")
    indexes: list[str] = Field(max_length=10, description="Fields worth an index; each is a key of `fields`.")


class EnrichClusterRequest(BaseModel):
    cluster_name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    sample_captions: list[str] = Field(default_factory=list, max_length=20)


class ClusterRelationships(BaseModel):
    similar_to: list[str] = Field(default_factory=list, max_length=10)
    parent: str | None = None


class EnrichClusterResponse(TimedResponse):
    hierarchy: list[str] = Field(min_length=1, max_length=8)
    folder_path: str = Field(pattern=FOLDER_PATH)
    extended_tags: list[str] = Field(max_length=30)
    relationships: ClusterRelationships
    search_description: str = Field(max_length=2000)


# --- OpenAI-compatible chat completions (the subset the `openai` client sends and reads) ---


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class JsonSchemaFormat(BaseModel):
    name: str = "response"
    schema_: dict[str, Any] = Field(alias="schema")


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(BaseModel):
    include_usage: bool = Field(default=False, description="A last chunk with `usage` and no choices.")


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # accept the client's other options (user, seed, ...)

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request.")
    response_format: ResponseFormat | None = None

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = Field(default=None, description="Only on the last chunk, with stream_options.include_usage.")


# --- OpenAI-compatible (legacy) text completions: the prompt is continued, no chat template ---


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the client's other options (user, seed, ...) are accepted

    model: str | None = None
    prompt: str | list[str] = Field(description="One prompt (a list of exactly one string is accepted too).")
    max_tokens: int = Field(default=16, ge=1, description="OpenAI's default for completions is 16.")
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request.")
    stream: Literal[False] = Field(default=False, description="Streaming is offered on chat completions only.")
    echo: bool = Field(default=False, description="Put the prompt in front of the completion.")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        prompts = [value] if isinstance(value, str) else value
        if len(prompts) != 1:
            raise ValueError(f"send one prompt per request (got {len(prompts)})")
        if not prompts[0].strip():
            raise ValueError("prompt is blank; send the text the model should continue")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: Literal["stop", "length"]


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
