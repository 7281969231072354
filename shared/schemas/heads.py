"""Trained CLIP heads (`mediamesh train-head`): what a head records about itself, the clip service's
`POST /v1/classify` with a head, and `GET /v1/heads` (the clip service's, passed on by the gateway)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.clip import ZeroShotResult
from shared.schemas.common import TimedResponse


class EmbeddingSpace(BaseModel):
    """The vectors a head was trained on: a head only makes sense on vectors of the same model."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="The clip service's model identity (hub id, or tiny-random/<folder>).")
    dim: int = Field(gt=0)
    weights_sha256: str | None = Field(default=None, description="SHA-256 of the model's weight files, where reported.")

    def same(self, other: EmbeddingSpace) -> bool:
        """Same model and size, and the same weights where both sides know them."""
        hashes = (self.weights_sha256, other.weights_sha256)
        return (self.model, self.dim) == (other.model, other.dim) and (None in hashes or hashes[0] == hashes[1])

    def __str__(self) -> str:
        weights = f", weights {self.weights_sha256[:12]}" if self.weights_sha256 else ""
        return f"{self.model} ({self.dim}-d{weights})"


class ClassMetrics(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int = Field(description="Held-out images of this label.")


class Evaluation(BaseModel):
    """One classifier on the held-out split."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]] = Field(description="Rows: true label, columns: predicted label, in `labels` order.")


class HeadMetrics(BaseModel):
    """The head and CLIP zero-shot on the same held-out split."""

    head: Evaluation
    zero_shot: Evaluation
    zero_shot_template: str
    train_images: dict[str, int]
    test_images: dict[str, int]


class HeadInfo(BaseModel):
    """`head.json` in a head's folder: everything but the weights."""

    name: str
    version: int = Field(ge=1)
    labels: list[str] = Field(min_length=2)
    space: EmbeddingSpace
    created_at: datetime
    metrics: HeadMetrics
    training: dict[str, float | int | str] = Field(default_factory=dict,
        description="How it was trained: seed, holdout share, regularisation C, class weighting.")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class HeadsReport(BaseModel):
    """`GET /v1/heads`: every version of every head, newest version first per name."""

    service_model: str = Field(description="The model the clip service serves; heads of another space are refused.")
    heads: list[HeadInfo]


class HeadClassifyRequest(BaseModel):
    images: list[str] = Field(min_length=1, max_length=64, description="Base64-encoded images.")
    head: str = Field(min_length=1, max_length=200, description="`name` (its newest version) or `name@version`.")


class HeadClassifyResponse(TimedResponse):
    model: str
    head: str = Field(description="The head that answered, as `name@version`.")
    labels: list[str]
    results: list[ZeroShotResult] = Field(description="Per image, the head's softmax over its labels, highest first.")
