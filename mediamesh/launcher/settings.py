"""What the launcher reads from the environment (the CLI options override it)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LauncherSettings(BaseSettings):
    """`MEDIAMESH_UP_*` tune the supervisor; `DATABASE_URL` / `REDIS_URL` skip the embedded servers."""

    model_config = SettingsConfigDict(env_prefix="MEDIAMESH_UP_", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default_factory=lambda: Path.home() / ".mediamesh", validation_alias="MEDIAMESH_HOME",
        description="All local state: models, postgres, redis, media, logs.",
    )
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    host: str = Field(default="127.0.0.1", description="Interface every process listens on.")
    health_timeout_s: float = Field(default=180.0, gt=0, description="How long to wait for every process to be up.")
    stop_timeout_s: float = Field(default=10.0, gt=0, description="SIGTERM grace period before SIGKILL.")
    max_restarts: int = Field(default=3, ge=0, description="Restarts of a child that dies before giving up on it.")
