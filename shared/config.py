"""Settings every process shares; each process subclasses with its own env prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HomeSettings(BaseSettings):
    """Where all local state lives: models, database, queue, media, logs."""

    model_config = SettingsConfigDict(env_prefix="MEDIAMESH_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".mediamesh")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def mediamesh_home() -> Path:
    return HomeSettings().home.expanduser()


class ServiceSettings(BaseSettings):
    """Settings of one model service. Subclasses set `env_prefix` (e.g. `CNN_`) and defaults."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_", env_nested_delimiter="__", extra="ignore")

    name: str = "model"
    host: str = "127.0.0.1"
    port: int = 8000
    model_path: Path | None = Field(
        default=None, description="Folder or file of the model; default MEDIAMESH_HOME/models/<name>."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    quantization: Literal["none", "8bit", "4bit"] = "none"
    cuda_memory_fraction: float | None = Field(
        default=None, gt=0, le=1, description="Cap this process's share of the GPU (torch per-process fraction)."
    )
    autoload: bool = Field(default=False, description="Load the model at start-up and on the first task call.")
    max_request_bytes: int = 25 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_batch_size: int = 16
    batch_timeout_ms: float = 5.0
    inference_threads: int = Field(default=1, ge=1, description="Threads that run blocking inference.")

    def resolved_model_path(self) -> Path:
        if self.model_path is not None:
            return self.model_path.expanduser()
        return HomeSettings().models_dir.expanduser() / self.name
