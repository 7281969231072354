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
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Jobs run at once by this worker; their images reach the services "
        "together (see WORKER_BATCH_MAX).",
    )
    batch_max: int = Field(default=16, ge=1, le=64, description="Most images of concurrent jobs sent in one call.")
    batch_wait_ms: float = Field(
        default=5.0, ge=0, description="How long the first image of a batch waits for other jobs' images."
    )
    lookahead: int = Field(
        default=16, ge=1, le=256, description="Queued jobs this worker claims ahead to choose from: it runs those "
        "whose models are loaded before one that would evict them (1: strictly first come, first served).",
    )
    max_deferrals: int = Field(
        default=32, ge=0, description="A queued job passed over this many times for others runs next."
    )
    models_refresh_s: float = Field(
        default=1.0, gt=0, description="How often the gateway is asked which models are loaded (GET /v1/models)."
    )
    whisper_upload_bytes: int = Field(
        default=24 * 1024**2, gt=0, description="A sound file (or a video's sound track) larger than this is "
        "re-encoded to 16 kHz mono Opus, what whisper hears anyway, before it is uploaded to whisper.",
    )
    image_analysis: bool = Field(
        default=True, description="Run BLIP-2's caption/objects/scene analysis on every image and video frame."
    )
    object_detection: bool = Field(
        default=True, description="Find the objects in every image and video frame with the detector service "
        "(when the gateway has one): stored with their boxes, searchable with `?object=`.",
    )
    max_objects: int = Field(default=20, ge=1, le=300, description="Most objects stored per image, highest first.")
    object_embeddings: bool = Field(
        default=False, description="Also store each object's crop embedding (one more CLIP call per image).",
    )
    progress_delay_s: float = Field(
        default=0.5, ge=0, description="A job's stage is written to Postgres (where `GET /v1/jobs/{id}` shows it "
        "and a cancel is noticed) once it has lasted this long; the first stage at once. 0: every stage.",
    )
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
