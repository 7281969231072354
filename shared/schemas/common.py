"""Shapes several services share."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="Probability (cnn, clip zero-shot) or fused score (cascade).")


class TimedResponse(BaseModel):
    """A task's answer. The service kit sets `processing_time_ms`; a service never writes it."""

    processing_time_ms: float = Field(default=0.0, description="From the request's arrival to its answer (the kit).")
