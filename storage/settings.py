"""Storage settings shared by the gateway (prefix `GATEWAY_`) and the worker (prefix `WORKER_`).

`DATABASE_URL`, `REDIS_URL` and `MEDIAMESH_HOME` are read unprefixed: every process of one mesh must
agree on them. Unset URLs mean "start the embedded server" (see shared/embedded.py).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import mediamesh_home


class StorageConnection(BaseSettings):
    """What the gateway and the worker must agree on: the servers, the queue, the media folder."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))
    queue_name: str = Field(
        default="mediamesh:jobs", validation_alias=AliasChoices("MEDIAMESH_QUEUE"),
        description="Redis key prefix of the job stream; gateway and worker must agree.",
    )
    media_dir: Path | None = Field(default=None, description="Content-addressed files; default MEDIAMESH_HOME/media.")
    migrate_on_start: bool = Field(default=True, description="Run `alembic upgrade head` at start-up.")
    gateway_url: str | None = Field(
        default=None, validation_alias=AliasChoices("GATEWAY_URL"),
        description="Where model calls go (the gateway's proxy); default the gateway serving the request.",
    )
    api_key: str | None = Field(default=None, validation_alias=AliasChoices("GATEWAY_API_KEY"),
                                description="Sent on model calls when the gateway requires a key.")

    def resolved_media_dir(self) -> Path:
        return (self.media_dir or mediamesh_home() / "media").expanduser()


class StorageSettings(StorageConnection):
    """The gateway's storage routes (prefix `GATEWAY_`)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    storage_enabled: bool = Field(
        default=True, description="GATEWAY_STORAGE_ENABLED=false runs a models-only gateway: no Postgres/Redis, "
        "the media/search/cluster routes answer 503 (for scheduler-only tests and setups).",
    )
    max_upload_bytes: int = Field(default=25 * 1024**2, gt=0, description="Same variable as the gateway's request cap.")
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    job_max_attempts: int = Field(default=4, ge=1, description="Deliveries before a job ends `failed`.")
    search_ef: int = Field(default=100, ge=10, description="hnsw.ef_search for nearest-neighbour queries.")


class WorkerSettings(StorageConnection):
    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore")

    gateway_url: str | None = Field(default="http://127.0.0.1:8000", validation_alias=AliasChoices("GATEWAY_URL"))
    consumer: str | None = Field(default=None, description="Consumer name in the group; default host-pid.")
    concurrency: int = Field(default=1, ge=1, le=16, description="Jobs run at once by this worker.")
    visibility_timeout_s: float = Field(
        default=60.0, gt=0, description="A job whose worker stopped heart-beating this long is delivered again."
    )
    backoff_base_s: float = Field(default=2.0, ge=0, description="Retry n waits base * 2**(n-1) seconds (capped).")
    backoff_max_s: float = Field(default=300.0, ge=0)
    reconcile_interval_s: float = Field(default=30.0, gt=0, description="How often lost queue entries are looked for.")
    stale_after_s: float | None = Field(
        default=None, gt=0, description="An unfinished job untouched this long, with nothing left in the queue, "
        "is queued again (covers a Redis that lost its data); default max(3 x visibility timeout, backoff max + 60).",
    )
    frame_interval_s: float = Field(default=2.0, gt=0, description="Video: one frame every this many seconds.")
    max_frames: int = Field(default=120, ge=1)
    model_timeout_s: float = Field(default=300.0, gt=0, description="Per model call through the gateway.")
    gateway_wait_s: float = Field(
        default=30.0, ge=0, description="How long a model call waits for an unreachable gateway before the job "
        "is retried later (the item is not stored degraded because the gateway restarted).",
    )
    busy_retries: int = Field(
        default=2, ge=0, description="Retries of a model call the gateway answered 503 + Retry-After."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address of the worker's /metrics.")
    metrics_port: int = Field(
        default=8010, ge=0, le=65535, description="Port of the worker's Prometheus /metrics; 0 turns it off."
    )
    log_level: str = "INFO"

    def resolved_stale_after_s(self) -> float:
        return self.stale_after_s or max(3 * self.visibility_timeout_s, self.backoff_max_s + 60)
