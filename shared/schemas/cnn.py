"""cnn service: `POST /v1/classify`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.schemas.common import LabelScore, TimedResponse


class ClassifyRequest(BaseModel):
    images: list[str] = Field(min_length=1, max_length=64, description="Base64-encoded images.")
    top_k: int = Field(5, ge=1, le=100)


class Classification(BaseModel):
    top_k: list[LabelScore] = Field(description="Highest probabilities first.")
    entropy: float = Field(description="Shannon entropy of the full distribution, in nats.")
    margin: float = Field(description="Top-1 minus top-2 probability.")


class CnnClassifyResponse(TimedResponse):
    model: str
    results: list[Classification]
