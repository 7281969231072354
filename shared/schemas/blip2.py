"""blip2 service: `POST /analyze-image`, `POST /v1/vqa`, `POST /v1/score-options`, `POST /label-cluster`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.schemas.common import LabelScore, TimedResponse
from shared.schemas.detector import Box

AnalysisTask = Literal["caption", "scene", "objects", "colors"]
ALL_TASKS: list[AnalysisTask] = ["caption", "scene", "objects", "colors"]
MAX_CLUSTER_IMAGES = 5


class AnalyzeImageRequest(BaseModel):
    image: str = Field(description="Base64-encoded image (or a data: URL).")
    tasks: list[AnalysisTask] = Field(
        default_factory=lambda: list(ALL_TASKS), min_length=1,
        description="Any of caption, scene, objects, colors; all four by default.",
    )


class DetectedObject(BaseModel):
    name: str
    confidence: float = Field(ge=0, le=1, description="The model's probability for the words naming the object.")
    boxes: list[Box] = Field(default_factory=list, description="Where it is, in pixels: BLIP-2 gives none; the "
                             "ingest pipeline adds the detector's boxes for it when the detector service runs.")


class AnalyzeImageResponse(TimedResponse):
    caption: str | None = None
    objects: list[DetectedObject] = Field(default_factory=list)
    scene_type: Literal["indoor", "outdoor"] | None = None
    scene_confidence: float | None = Field(default=None, ge=0, le=1)
    orientation: Literal["landscape", "portrait", "square"] | None = Field(
        default=None, description="From the image's aspect ratio (part of the scene task)."
    )
    dominant_colors: list[str] = Field(default_factory=list, description="Hex colours, most frequent first.")


class VqaRequest(BaseModel):
    image: str
    question: str = Field(min_length=1, max_length=500)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question is blank; ask something about the image")
        return value.strip()


class VqaResponse(TimedResponse):
    answer: str


class ScoreOptionsRequest(VqaRequest):
    options: list[str] = Field(min_length=2, max_length=50, description="The candidate answers to rank.")
    answer: bool = Field(default=False, description="Also generate the free-text answer (the model's reasoning).")

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        cleaned = [option.strip() for option in options]
        if not all(cleaned) or len(set(cleaned)) != len(cleaned):
            raise ValueError(f"options must be distinct and not blank; got {options}")
        return cleaned


class ScoreOptionsResponse(TimedResponse):
    scores: list[LabelScore] = Field(description="Probability of each option as the answer, highest first.")
    answer: str | None = None


class LabelClusterRequest(BaseModel):
    images: list[str] = Field(min_length=1, description=f"At most {MAX_CLUSTER_IMAGES} representative images.")
    cluster_size: int = Field(default=1, ge=1, description="How many items the cluster holds in all.")

    @field_validator("images")
    @classmethod
    def _at_most_five(cls, images: list[str]) -> list[str]:
        if len(images) > MAX_CLUSTER_IMAGES:
            raise ValueError(
                f"label-cluster takes at most {MAX_CLUSTER_IMAGES} representative images, got {len(images)}; "
                "send the ones closest to the cluster centre"
            )
        return images


class LabelClusterResponse(TimedResponse):
    cluster_name: str = Field(min_length=1)
    description: str
    tags: list[str]
    primary_category: str
    confidence: float = Field(ge=0, le=1)
