"""The gateway's own shapes: `/v1/models` (OpenAI's list, with what `ollama ps` shows), `/v1/classify` with its
trace, `/v1/health`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from shared.schemas.common import LabelScore
from shared.schemas.detector import Box


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
    device: str | None = Field(default=None, description="The device it sits on, as the per-device budgets name it "
                               "(`<node>/<GPU UUID>` or `<node>/cpu`); null until the service has said.")
    resident_bytes: int = Field(default=0, description="Held on the GPU while not loaded: the CUDA context of a "
                                "service process that has touched it (counted in the budget's reserved_bytes).")
    unload_mode: str = Field(default="release", description="restart: unloading ends the service's process, "
                             "which frees its CUDA context too.")
    overdue: int = Field(default=0, description="Inferences running past the service's limit (the watchdog).")
    freed_bytes: int | None = Field(default=None, description="GPU memory its last unload gave back (NVML): the "
                                    "weights for a release unload, the whole process for a restart unload.")


class DeviceCheck(BaseModel):
    """One GPU: what NVML says is in use, against what the budget accounts for on it."""

    uuid: str
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int = Field(description="total - free, as NVML counts it: every process, the driver's own share.")
    accounted_bytes: int = Field(description="What the budget counts for the services on this device.")
    unaccounted_bytes: int = Field(description="used - accounted: positive when something else holds memory.")
    agrees: bool = Field(description="The two differ by no more than GATEWAY_RECONCILE_MARGIN_BYTES.")
    message: str | None = None


class DeviceBudget(BaseModel):
    """One device's budget as the ledger shared by every gateway counts it."""

    device: str = Field(description="`<node>/<GPU UUID>` or `<node>/cpu`; `default` for services that did not say.")
    budget_bytes: int = Field(description="Usable budget of this device: its budget minus headroom.")
    reserved_bytes: int = Field(description="Reserved on it through every gateway.")
    free_bytes: int
    gateways: int = Field(description="Gateways holding a lease on a reservation of this device.")


class ModelsReport(BaseModel):
    """OpenAI's `GET /v1/models` list; the budget fields are mediamesh's own."""

    object: Literal["list"] = "list"
    data: list[ModelStatus]
    budget_bytes: int = Field(description="Usable budget: configured budget minus headroom, summed over the devices.")
    reserved_bytes: int = Field(description="Reserved through every gateway, summed over the devices.")
    free_bytes: int
    budgets: list[DeviceBudget] = Field(default_factory=list, description="Each device's own budget (the ledger).")
    devices: list[DeviceCheck] = Field(
        default_factory=list, description="Each GPU the services report (NVML), reconciled with the budget.")


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


class ObjectClassification(BaseModel):
    label: str | None = Field(description="The per-object stages' fused top-1 (a condition, with `conditions`).")
    confidence: float
    top_k: list[LabelScore]


class ObjectAnswer(BaseModel):
    """One object the detection stage found, with its own classification."""

    label: str = Field(description="The detector's label (or query) for the box.")
    score: float = Field(description="The detector's score.")
    box: Box = Field(description="In pixels of the image.")
    box_normalized: Box
    classification: ObjectClassification | None = Field(
        default=None, description="None when the crop was too small or its stages failed (see the trace).")


class ObjectTrace(BaseModel):
    label: str
    box: Box
    status: Literal["ok", "skipped", "failed"]
    reason: str = ""
    stages: list[StageTrace] = Field(default_factory=list, description="The per-object stages run on its crop.")
    crop: tuple[int, int] | None = Field(default=None, description="Width and height of the crop classified.")


class DetectionTrace(BaseModel):
    service: str
    status: Literal["ok", "failed"]
    ms: float
    found: int = Field(default=0, description="Boxes at or above the score threshold, before the cap.")
    error: str | None = None
    objects: list[ObjectTrace] = Field(default_factory=list, description="Per object, in `objects`' order.")


class CascadeTrace(BaseModel):
    variant: str
    stages: list[StageTrace]
    detection: DetectionTrace | None = Field(default=None, description="The detection stage, when configured.")
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
    objects: list[ObjectAnswer] | None = Field(
        default=None, description="The objects found and classified, when the variant has a detection stage.")


class ServiceHealth(BaseModel):
    name: str
    kind: str
    url: str
    status: Literal["up", "down"]
    model_state: str | None = None
    error: str | None = None
    checked_at: datetime | None = None
    overdue: int = Field(default=0, description="Inferences running past the service's limit (the watchdog).")


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
    warnings: list[str] = Field(default_factory=list, description="Why the report is degraded though everything "
                                "is up: an inference past its limit, a GPU whose use the budget does not explain.")


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
