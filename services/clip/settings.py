"""Settings of the clip service (env prefix `CLIP_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.config import BatchSettings, HomeSettings, ImageInputSettings


class ClipSettings(ImageInputSettings, BatchSettings):
    """Images and texts in, dynamically batched; no quantization setting (CLIP runs in its dtype)."""

    model_config = SettingsConfigDict(env_prefix="CLIP_", env_nested_delimiter="__", extra="ignore")

    name: str = "clip"
    port: int = 8005
    label_cache_size: int = Field(
        default=128, ge=0, description="(labels, template) sets whose prompt embeddings stay cached (LRU); 0: off."
    )
    heads_dir: Path | None = Field(
        default=None, description="Trained heads (`mediamesh train-head`) it serves; default MEDIAMESH_HOME/heads."
    )

    def resolved_heads_dir(self) -> Path:
        return (self.heads_dir or HomeSettings().heads_dir).expanduser()
