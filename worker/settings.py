"""The worker's settings: env prefix `WORKER_`; the shared connections and gateway access are nested."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.config import ConnectionSettings, GatewayAccess


class WorkerSettings(BaseSettings):
    """The worker's one settings class (prefix `WORKER_`), with the mesh's shared connections and gateway access."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore")

    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    gateway: GatewayAccess = Field(default_factory=GatewayAccess)
    migrate_on_start: bool = Field(default=True, description="Run `alembic upgrade head` at start-up.")
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
