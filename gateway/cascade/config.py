"""The cascade's configuration: stages, escalation strategies, variants and their A/B split.

Changeable at run time (`PUT /v1/cascade/config`); anything invalid is refused with a 422
whose message says what to change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

StageKind = Literal["cnn", "clip", "blip2"]
STAGE_PATHS: dict[str, str] = {"cnn": "/v1/classify", "clip": "/v1/zero-shot", "blip2": "/v1/vqa"}


class EscalationStrategy(BaseModel):
    """When to go on to the next stage, judged on the scores fused so far."""

    kind: Literal["threshold", "interval", "entropy"] = "threshold"
    threshold: float = Field(default=0.8, ge=0, le=1, description="threshold: escalate when top-1 is below it.")
    class_thresholds: dict[str, float] = Field(
        default_factory=dict, description="threshold: per predicted class, instead of `threshold`."
    )
    positive_label: str | None = Field(default=None, description="interval: the class whose probability is judged.")
    low: float = Field(default=0.2, ge=0, le=1, description="interval: escalate when low <= p(positive) < high.")
    high: float = Field(default=0.9, ge=0, le=1)
    max_entropy: float = Field(default=1.0, ge=0, description="entropy: escalate above this many nats.")
    always_escalate: list[str] = Field(default_factory=list, description="Predicted classes that always go on.")

    @model_validator(mode="after")
    def _check(self) -> EscalationStrategy:
        if self.kind == "interval" and not self.positive_label:
            raise ValueError("the interval strategy needs positive_label (the class whose probability is judged)")
        if self.low > self.high:
            raise ValueError(f"interval low ({self.low}) must not be above high ({self.high})")
        bad = {k: v for k, v in self.class_thresholds.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"class_thresholds must lie in [0, 1]; got {bad}")
        return self


class StageConfig(BaseModel):
    kind: StageKind
    service: str = Field(description="A service name from GATEWAY_SERVICES (e.g. cnn, cnn_accurate, clip).")
    weight: float = Field(default=1.0, ge=0, description="Weight of this stage's scores in the fusion.")
    top_k: int = Field(default=5, ge=2, le=100, description="cnn: labels kept; clip/blip2: candidates offered.")
    template: str = Field(default="a photo of a {}.", description="clip: prompt template, `{}` is the label.")
    question: str = Field(default="Which of these is it: {options}? Answer with one of them.",
        description="blip2: the VQA question; `{options}` is the candidate labels.",
    )
    escalate: EscalationStrategy = Field(default_factory=lambda: EscalationStrategy())

    @model_validator(mode="after")
    def _check(self) -> StageConfig:
        if self.kind == "clip" and "{}" not in self.template:
            raise ValueError(f"clip template {self.template!r} must contain {{}} where the label goes")
        if self.kind == "blip2" and "{options}" not in self.question:
            raise ValueError(f"blip2 question {self.question!r} must contain {{options}}")
        return self


def default_stages() -> list[StageConfig]:
    return [
        StageConfig(kind="cnn", service="cnn", weight=0.4, escalate=EscalationStrategy(threshold=0.8)),
        StageConfig(kind="clip", service="clip", weight=0.6, escalate=EscalationStrategy(threshold=0.5)),
        StageConfig(kind="blip2", service="blip2", weight=1.0, top_k=3),
    ]


class CascadeVariant(BaseModel):
    stages: list[StageConfig] = Field(default_factory=default_stages, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> CascadeVariant:
        if self.stages[0].kind != "cnn":
            raise ValueError(f"the first stage must be a cnn (it proposes the labels), not {self.stages[0].kind}")
        return self


class CascadeConfig(BaseModel):
    variants: dict[str, CascadeVariant] = Field(default_factory=lambda: {"a": CascadeVariant()}, min_length=1)
    split: dict[str, float] = Field(
        default_factory=dict, description="Share of requests per variant (sums to 1); empty: all to the first."
    )

    @model_validator(mode="after")
    def _check(self) -> CascadeConfig:
        unknown = sorted(set(self.split) - set(self.variants))
        if unknown:
            raise ValueError(f"split names unknown variant(s) {unknown}; variants: {sorted(self.variants)}")
        if self.split:
            if any(share < 0 for share in self.split.values()):
                raise ValueError(f"split shares must not be negative: {self.split}")
            if abs(sum(self.split.values()) - 1) > 1e-6:
                raise ValueError(f"split shares must add up to 1, they add up to {sum(self.split.values()):g}")
        return self

    def services(self) -> set[str]:
        return {stage.service for variant in self.variants.values() for stage in variant.stages}
