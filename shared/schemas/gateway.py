"""The gateway's own shapes: `/v1/models` (OpenAI's list, with what `ollama ps` shows), `/v1/classify` with its
trace, `/v1/health`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from shared.schemas.common import LabelScore


class SlotState(StrEnum):
    """What the gateway believes about one model (re-synchronised from the service's `/v1/model`)."""

    unloaded = "unloaded"
    loading = "loading"
    loaded = "loaded"
    unloading = "unloading"
    error = "error"
    down = "down"


class ModelStatus(BaseModel):
    """One entry of OpenAI's model list (`id`, `object`, `created`, `owned_by`) plus its residency."""

    id: str = Field(description="The service's name; OpenAI requests name it (or an alias) as `model`.")
    object: Literal["model"] = "model"
    created: int = Field(default=0, description="Unix time the model was last loaded; 0 if never.")
    owned_by: str = "mediamesh"
    aliases: list[str] = Field(default_factory=list, description="Other `model` names that reach this service.")
    kind: str
    url: str
    state: SlotState
    reserved_bytes: int = Field(description="Bytes this model holds in the budget now (0 unless loading/loaded).")
    footprint_bytes: int | None = Field(default=None, description="Measured after its first load.")
    estimated_bytes: int = Field(default=0, description="Estimate from the weight files, used until the first load.")
    pinned: bool = False
    priority: int = 0
    in_flight: int = Field(default=0, description="Requests holding this model now.")
    waiting: int = Field(default=0, description="Requests waiting for it to load (for memory, or for the load).")
    keep_alive: float | None = Field(default=None, description="The last request's keep_alive (capped), if any.")
    last_used: datetime | None = None
    expires_at: datetime | None = Field(default=None, description="When the idle time-to-live unloads it.")
    error: str | None = None


class ModelsReport(BaseModel):
    """OpenAI's `GET /v1/models` list; the budget fields are mediamesh's own."""

    object: Literal["list"] = "list"
    data: list[ModelStatus]
    budget_bytes: int = Field(description="Usable budget: configured budget minus headroom.")
    reserved_bytes: int
    free_bytes: int


class ClassifyRequest(BaseModel):
    image: str = Field(description="Base64-encoded image (a data: URL is accepted too).")
    variant: str | None = Field(default=None, description="Force one cascade variant instead of the A/B split.")
    request_id: str | None = Field(default=None, description="Stable id for the A/B split; default the image's hash.")
    mode: Literal["auto", "always", "never"] = Field(
        default="auto", description="`always` runs every stage (calibration), `never` stops after the first."
    )
    keep_alive: float | None = Field(
        default=None, allow_inf_nan=False, description="As Ollama's: seconds each stage's model stays loaded "
        "after this request; 0 unloads it right after, -1 keeps it loaded (capped by GATEWAY_MAX_KEEP_ALIVE_S); "
        "default: the model's idle time-to-live.",
    )


class StageTrace(BaseModel):
    stage: str
    service: str
    status: Literal["ok", "failed"]
    top_k: list[LabelScore] = Field(default_factory=list,
        description="This stage's own raw scores over every candidate it was offered.")
    fused: list[LabelScore] = Field(default_factory=list, description="Scores fused over the stages so far.")
    ms: float
    answer: str | None = Field(default=None, description="Free-text answer (blip2 VQA), when the stage gives one.")
    entropy: float | None = None
    error: str | None = None
    decision: Literal["escalate", "jump", "stop", "final"] = "final"
    reason: str = ""
    temperature: float = Field(default=1.0, description="Applied to `top_k` (the raw scores) before fusion.")


class CascadeTrace(BaseModel):
    variant: str
    stages: list[StageTrace]
    degraded: bool = Field(default=False, description="A later stage was down; the answer is the last good stage's.")
    total_ms: float
    rule: str = Field(default="top-1", description="The decision rule that gave the answer (or sent it to review).")


class ClassifyResponse(BaseModel):
    label: str | None = Field(description="None when the decision is `review`: `top_k` holds the candidates.")
    confidence: float
    decision: Literal["answer", "review"] = "answer"
    top_k: list[LabelScore]
    variant: str
    request_id: str
    trace: CascadeTrace


class ServiceHealth(BaseModel):
    name: str
    kind: str
    url: str
    status: Literal["up", "down"]
    model_state: str | None = None
    error: str | None = None
    checked_at: datetime | None = None


class DependencyHealth(BaseModel):
    name: str
    status: Literal["up", "down"]
    detail: str | None = None
    latency_ms: float | None = None
    critical: bool = Field(default=True, description="Down makes the whole report `down`, not just `degraded`.")


class HealthReport(BaseModel):
    status: Literal["ok", "degraded", "down"]
    services: list[ServiceHealth]
    dependencies: list[DependencyHealth] = Field(default_factory=list)


class FeedbackRequest(BaseModel):
    label: str = Field(min_length=1, max_length=200, description="The true label of the image classified.")


class FeedbackResponse(BaseModel):
    request_id: str
    label: str
    results: int = Field(description="How many stored answers to this request got the label.")


class Estimate(BaseModel):
    value: float
    low: float = Field(description="95 % confidence interval (Wilson for rates, normal for means).")
    high: float
    n: int


class VariantReport(BaseModel):
    variant: str
    results: int
    with_feedback: int
    accuracy: Estimate | None = Field(description="Over answered results with feedback; None without any.")
    escalation_rate: Estimate
    review_rate: Estimate
    stage_calls: Estimate = Field(description="Mean cost per image: model calls made by the cascade.")
    latency_ms: Estimate


class CascadeReport(BaseModel):
    variants: list[VariantReport]
