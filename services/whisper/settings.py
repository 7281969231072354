"""Settings of the whisper service (env prefix `WHISPER_`)."""

from __future__ import annotations

from typing import Literal, Self

import torch
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.whisper.tiny import OPENAI_TINY_CHECKPOINT
from shared.config import ServiceSettings
from shared.kit.memory import resolve_dtype


class WhisperSettings(ServiceSettings):
    """Audio in, one transcription at a time: no image or batch settings."""

    model_config = SettingsConfigDict(env_prefix="WHISPER_", env_nested_delimiter="__", extra="ignore")

    name: str = "whisper"
    port: int = 8002
    backend: Literal["faster", "openai"] = "faster"
    quantization: Literal["auto", "none", "8bit", "4bit"] = Field(
        default="auto", description="auto: 8bit (int8) with faster-whisper, none with openai-whisper. No 4bit."
    )
    openai_checkpoint: str = Field(
        default=OPENAI_TINY_CHECKPOINT, description="openai-whisper `.pt` file in the model folder (or a full path)."
    )
    compute_type: str | None = Field(
        default=None, description="CTranslate2 compute type; default from the device, dtype and quantization."
    )
    cpu_threads: int = Field(default=0, ge=0, description="CTranslate2 threads on the CPU; 0 lets it choose.")
    beam_size: int = Field(default=5, ge=1, le=10)
    max_audio_seconds: float = Field(default=3 * 3600, gt=0, description="Longer audio gets 413.")
    max_request_bytes: int = Field(default=100 * 1024 * 1024, ge=1, description="Larger request bodies get 413.")

    @model_validator(mode="after")
    def _quantization_fits_backend(self) -> Self:
        if self.quantization == "auto":
            # faster-whisper's own default on the CPU is int8; openai-whisper has no quantized path
            self.quantization = "8bit" if self.backend == "faster" else "none"
        if self.backend == "openai" and self.quantization != "none":
            raise ValueError("openai-whisper runs unquantized: set WHISPER_QUANTIZATION=none or WHISPER_BACKEND=faster")
        if self.quantization == "4bit":
            raise ValueError("faster-whisper has no 4-bit mode: set WHISPER_QUANTIZATION to 8bit or none")
        if self.backend == "openai" and self.dtype == "bfloat16":
            raise ValueError("openai-whisper runs in float32 or float16: set WHISPER_DTYPE to auto, float32 or float16")
        return self

    def ct2_compute_type(self, device: torch.device) -> str:
        """WHISPER_COMPUTE_TYPE, else the dtype (auto: float16 on CUDA, float32 on the CPU), int8 under 8bit."""
        if self.compute_type:
            return self.compute_type
        precision = str(resolve_dtype(self.dtype, device)).removeprefix("torch.")
        if self.quantization == "8bit":
            return "int8" if precision == "float32" else f"int8_{precision}"
        return precision
