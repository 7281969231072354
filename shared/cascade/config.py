"""The cascade's configuration: stages, routing, the decision policy, the detection stage, variants and their
A/B split.

Changeable at run time (`PUT /v1/cascade/config`); anything invalid is refused with a 422
whose message says what to change. Shared by the gateway and `mediamesh calibrate`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

StageKind = Literal["cnn", "clip", "blip2", "clip_head"]
STAGE_PATHS: dict[str, str] = {"cnn": "/v1/classify", "clip": "/v1/zero-shot", "blip2": "/v1/score-options",
                               "clip_head": "/v1/classify"}
# stages that answer over their own labels (a cnn's classes, a trained head's) rather than the candidates offered
OWN_LABEL_KINDS = frozenset({"cnn", "clip_head"})


def _unit(name: str, values: dict[str, float]) -> None:
    bad = {k: v for k, v in values.items() if not 0 <= v <= 1}
    if bad:
        raise ValueError(f"{name} must lie in [0, 1]; got {bad}")


class EscalationStrategy(BaseModel):
    """After a stage: stop (confident), go on to the next stage, or jump straight to the last one.

    Seed 000's three zones are `threshold` (high) with `jump_below` (low): top-1 >= threshold
    returns, jump_below <= top-1 < threshold goes to the next stage, top-1 < jump_below goes
    straight to the variant's `last_stage`."""

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
    jump_below: float | None = Field(default=None, ge=0, le=1,
        description="Top-1 (fused) below this skips the middle stages: straight to the last stage.")

    @model_validator(mode="after")
    def _check(self) -> EscalationStrategy:
        if self.kind == "interval" and not self.positive_label:
            raise ValueError("the interval strategy needs positive_label (the class whose probability is judged)")
        if self.low > self.high:
            raise ValueError(f"interval low ({self.low}) must not be above high ({self.high})")
        _unit("class_thresholds", self.class_thresholds)
        if self.jump_below is not None and self.kind == "threshold":
            above = {k: v for k, v in {"threshold": self.threshold, **self.class_thresholds}.items()
                     if v < self.jump_below}
            if above:
                raise ValueError(f"jump_below ({self.jump_below}) must not be above the stop threshold(s) {above}: "
                                 "thresholds out of order")
        return self

    def labels(self) -> set[str]:
        return {*self.class_thresholds, *self.always_escalate, *([self.positive_label] if self.positive_label else [])}


class StageConfig(BaseModel):
    kind: StageKind
    service: str = Field(description="A service name from GATEWAY_SERVICES (e.g. cnn, cnn_accurate, clip).")
    weight: float = Field(default=1.0, ge=0, description="Weight of this stage's scores in the fusion.")
    temperature: float = Field(default=1.0, gt=0,
        description="p ∝ p_raw^(1/T) before fusion (T > 1 softens); fitted by `mediamesh calibrate` (NLL).")
    top_k: int = Field(default=5, ge=2, le=100, description="cnn, clip_head: labels kept; clip/blip2: offered.")
    template: str = Field(default="a photo of a {}.", description="clip: prompt template, `{}` is the label.")
    templates: list[str] = Field(default_factory=list,
        description="clip: a prompt ensemble (embeddings averaged per label); replaces `template` when given.")
    label_templates: dict[str, list[str]] = Field(default_factory=dict,
        description="clip: per label, its own templates (e.g. 'a cherry with a {} inside.').")
    question: str = Field(default="Which of these is it: {options}? Answer with one of them.",
        description="blip2: the question its candidates are scored against; `{options}` lists them (optional).",
    )
    head: str | None = Field(default=None,
        description="clip_head: the trained head, `name` (its newest version) or `name@version` (GET /v1/heads).")
    escalate: EscalationStrategy = Field(default_factory=lambda: EscalationStrategy())

    @model_validator(mode="after")
    def _check(self) -> StageConfig:
        if self.kind == "clip_head" and not self.head:
            raise ValueError("a clip_head stage needs `head`: the name of a head trained with `mediamesh train-head` "
                             "(GET /v1/heads lists them)")
        prompts = [self.template, *self.templates, *(t for ts in self.label_templates.values() for t in ts)]
        missing = [t for t in prompts if "{}" not in t]
        if self.kind == "clip" and missing:
            raise ValueError(f"clip template(s) {missing} must contain {{}} where the label goes")
        empty = [label for label, ts in self.label_templates.items() if not ts]
        if empty:
            raise ValueError(f"label_templates for {empty} are empty; give at least one template or drop the label")
        return self

    def prompt_templates(self) -> list[str]:
        return self.templates or [self.template]


def default_object_stages() -> list[StageConfig]:
    return [StageConfig(kind="cnn", service="cnn")]


class DetectionStage(BaseModel):
    service: str = Field(default="detector", description="The detector service (GATEWAY_SERVICES name).")
    score_threshold: float = Field(default=0.5, ge=0, le=1, description="Boxes scoring below this are ignored.")
    max_objects: int = Field(default=10, ge=1, le=100, description="Cap on objects per image, highest scores first.")
    queries: list[str] = Field(default_factory=list,
        description="What to look for: phrases for an open-vocabulary detector (OWLv2); for a closed one (RT-DETR) "
                    "only these of its labels (each must be one of them). Empty: everything it knows.")
    margin: float = Field(default=0.1, ge=0, le=1,
        description="Context around each box: this fraction of its width (height) is added on each side.")
    min_crop_pixels: int = Field(default=8, ge=1, le=512,
        description="A box narrower or shorter than this many pixels is not classified (the trace says so).")
    stages: list[StageConfig] = Field(default_factory=default_object_stages, min_length=1,
        description="What classifies each object's crop, in order; after each, its `escalate` decides whether the "
                    "next runs. The first proposes labels (cnn, clip_head), or all are clip stages scoring conditions.")
    conditions: list[str] = Field(default_factory=list,
        description='Conditions the clip stages tell apart per object, e.g. ["normal", "damaged", "blocked"].')
    condition_template: str = Field(default="a photo of a {condition} {object}.",
        description="The clip prompt for a condition of an object: `{condition}` and `{object}` (the detector's "
                    "label) are filled in.")

    @model_validator(mode="after")
    def _check(self) -> DetectionStage:
        if self.conditions:
            if len(set(self.conditions)) < 2:
                raise ValueError(f"conditions need at least 2 different ones to choose among, got {self.conditions}")
            missing = [p for p in ("{condition}", "{object}") if p not in self.condition_template]
            if missing:
                raise ValueError(f"condition_template must contain {' and '.join(missing)}, "
                                 "e.g. 'a photo of a {condition} {object}.'")
            other = sorted({stage.kind for stage in self.stages if stage.kind != "clip"})
            if other:
                raise ValueError(f"conditions are scored by clip stages only; drop the {other} stage(s) from the "
                                 "detection stages or drop `conditions`")
        elif self.stages[0].kind not in OWN_LABEL_KINDS:
            raise ValueError(f"the first object stage must propose the labels ({', '.join(sorted(OWN_LABEL_KINDS))}), "
                             f"not {self.stages[0].kind}; or give `conditions` for clip stages to score")
        if any(not q.strip() for q in self.queries):
            raise ValueError("queries must be non-empty phrases")
        return self

    def services(self) -> set[str]:
        return {self.service, *(stage.service for stage in self.stages)}

    def condition_prompt(self, object_label: str) -> str:
        """The clip template (with `{}` for the condition) for one object."""
        return self.condition_template.replace("{object}", object_label).replace("{condition}", "{}")


class DecisionPolicy(BaseModel):
    """What the fused scores answer: per-class decision thresholds, class bias, an abstain band."""

    class_bias: dict[str, float] = Field(default_factory=dict,
        description="Log-prior added per class: p(c) ∝ p(c)·exp(bias), then renormalised.")
    class_thresholds: dict[str, float] = Field(default_factory=dict,
        description="Answer the class when p(class) >= this (e.g. pit: 0.2), before top-1; "
                    "a class listed here is answered only when it meets its threshold.")
    review_thresholds: dict[str, float] = Field(default_factory=dict,
        description="Abstain band: p(class) >= this but below its class threshold → decision review.")
    review_below: float | None = Field(default=None, ge=0, le=1,
        description="Abstain when the winning label's probability is below this.")

    @model_validator(mode="after")
    def _check(self) -> DecisionPolicy:
        _unit("decision class_thresholds", self.class_thresholds)
        _unit("review_thresholds", self.review_thresholds)
        no_threshold = sorted(set(self.review_thresholds) - set(self.class_thresholds))
        if no_threshold:
            raise ValueError(f"review_thresholds {no_threshold} need a class threshold above them (class_thresholds)")
        wrong = {k: (v, self.class_thresholds[k]) for k, v in self.review_thresholds.items()
                 if v > self.class_thresholds[k]}
        if wrong:
            raise ValueError(f"review thresholds must not be above their class thresholds (review, class): {wrong}")
        return self

    def labels(self) -> set[str]:
        return {*self.class_bias, *self.class_thresholds, *self.review_thresholds}


def default_stages() -> list[StageConfig]:
    return [
        StageConfig(kind="cnn", service="cnn", weight=0.4, escalate=EscalationStrategy(threshold=0.8)),
        StageConfig(kind="clip", service="clip", weight=0.6, escalate=EscalationStrategy(threshold=0.5)),
        StageConfig(kind="blip2", service="blip2", weight=1.0, top_k=3),
    ]


class CascadeVariant(BaseModel):
    stages: list[StageConfig] = Field(default_factory=default_stages, min_length=1)
    last_stage: str | None = Field(default=None,
        description="The service of the stage `jump_below` jumps to; default the final stage.")
    labels: list[str] = Field(default_factory=list,
        description="The labels the cascade can answer; when given, per-class maps may name only these.")
    decision: DecisionPolicy = Field(default_factory=lambda: DecisionPolicy())
    detection: DetectionStage | None = Field(default=None,
        description="Also find the objects (detector), crop and classify each: the answer gains `objects`.")

    @model_validator(mode="after")
    def _check(self) -> CascadeVariant:
        if self.stages[0].kind not in OWN_LABEL_KINDS:
            raise ValueError(f"the first stage must be a cnn or a clip_head (it proposes the labels), "
                             f"not {self.stages[0].kind}")
        later = [stage.service for stage in self.stages[1:]]
        if self.last_stage is not None and self.last_stage not in later:
            raise ValueError(f"last_stage '{self.last_stage}' is not a later stage of this variant; "
                             f"later stages: {later}")
        if self.labels:
            named = self.decision.labels().union(*(s.escalate.labels() | set(s.label_templates) for s in self.stages))
            unknown = sorted(named - set(self.labels))
            if unknown:
                raise ValueError(f"per-class settings name unknown label(s) {unknown}; labels: {self.labels}")
        return self

    def services(self) -> set[str]:
        objects = self.detection.services() if self.detection is not None else set()
        return {stage.service for stage in self.stages} | objects

    def last_index(self) -> int:
        if self.last_stage is None:
            return len(self.stages) - 1
        return next(i for i, s in enumerate(self.stages) if i > 0 and s.service == self.last_stage)


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
        return {service for variant in self.variants.values() for service in variant.services()}
