"""Shapes several services share."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="Probability (cnn, clip zero-shot) or fused score (cascade).")
