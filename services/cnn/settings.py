"""Settings of the cnn service (env prefix `CNN_`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.config import BatchSettings, ImageInputSettings

WeightFormat = Literal["auto", "hf", "torchscript", "onnx"]


class CnnSettings(ImageInputSettings, BatchSettings):
    """Images in, dynamically batched; no quantization setting (the runtimes run the weights as stored)."""

    model_config = SettingsConfigDict(env_prefix="CNN_", env_nested_delimiter="__", extra="ignore")

    name: str = "cnn"
    port: int = 8004
    format: WeightFormat = Field(
        default="auto",
        description="Which weights to load from a folder holding several: auto picks hf, then torchscript, then onnx.",
    )
