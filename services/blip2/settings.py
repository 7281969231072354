"""Settings of the blip2 service (env prefix `BLIP2_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.config import ImageInputSettings, QuantizationSettings


class Blip2Settings(ImageInputSettings, QuantizationSettings):
    model_config = SettingsConfigDict(env_prefix="BLIP2_", env_nested_delimiter="__", extra="ignore")

    name: str = "blip2"
    port: int = 8001
    max_new_tokens: int = Field(default=30, ge=1, le=200, description="Longest caption or answer, in tokens.")
    max_objects: int = Field(default=8, ge=1, le=50)
    num_colors: int = Field(default=5, ge=1, le=16)
    max_batch_size: int = Field(
        default=16, ge=1, description="Most images in one forward pass; label-cluster runs larger clusters in parts."
    )
