"""Settings of the llm service (env prefix `LLM_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.config import QuantizationSettings


class LlmSettings(QuantizationSettings):
    """Text in, one generation at a time: no image or batch settings."""

    model_config = SettingsConfigDict(env_prefix="LLM_", env_nested_delimiter="__", extra="ignore")

    name: str = "llm"
    port: int = 8003
    max_new_tokens: int = Field(default=1024, ge=1, description="Most tokens one request may ask for.")
    default_max_tokens: int = Field(default=256, ge=1, description="When a chat request names no max_tokens.")
    max_prompt_tokens: int = Field(default=8192, ge=16)
    structured_short_chars: int = Field(default=48, ge=1, description="Longest name/tag/field description.")
    structured_long_chars: int = Field(default=400, ge=1, description="Longest reasoning/description text.")
    structured_max_items: int = Field(default=12, ge=1, description="Most tags, hierarchy levels, indexes.")
