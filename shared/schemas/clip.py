"""clip service: `POST /v1/embed/image`, `POST /v1/embed/text`, `POST /v1/zero-shot`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.schemas.common import LabelScore, TimedResponse

DEFAULT_TEMPLATE = "a photo of a {}."


class ImageEmbedRequest(BaseModel):
    images: list[str] = Field(min_length=1, max_length=64, description="Base64-encoded images.")


class TextEmbedRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=256)


class EmbedResponse(TimedResponse):
    model: str
    dim: int
    weights_sha256: str | None = Field(None, description="SHA-256 over the model's weight files: with `model` "
                                       "and `dim`, the embedding space these vectors belong to.")
    embeddings: list[list[float]] = Field(description="L2-normalised, one per input, in input order.")


class ZeroShotRequest(BaseModel):
    images: list[str] = Field(min_length=1, max_length=64)
    labels: list[str] = Field(min_length=2, max_length=1000)
    template: str = Field(DEFAULT_TEMPLATE, description="Prompt template; `{}` is replaced by the label.")
    templates: list[str] = Field(default_factory=list, max_length=100,
        description="A prompt ensemble: each label's text embedding is the mean over these (replaces `template`).")
    label_templates: dict[str, list[str]] = Field(default_factory=dict,
        description="Per label, its own templates (an ensemble too), instead of the shared ones.")

    def prompts(self) -> list[list[str]]:
        """Per label, in `labels` order, its templates."""
        shared = self.templates or [self.template]
        return [self.label_templates.get(label) or shared for label in self.labels]


class ZeroShotResult(BaseModel):
    scores: list[LabelScore] = Field(description="Softmax over the labels, highest first.")


class ZeroShotResponse(TimedResponse):
    model: str
    results: list[ZeroShotResult]
