"""The gateway's settings: env prefix `GATEWAY_` (nested with `__`), plus the unprefixed
`DATABASE_URL`, `REDIS_URL` and `MEDIAMESH_HOME` that every process of the mesh shares."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, PositiveFloat, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.catalog import SERVICES
from shared.config import ConnectionSettings, GatewayAccess
from storage.ranking import FusionWeights

GIB = 1024**3


class ServiceEndpoint(BaseModel):
    url: str
    kind: str = Field(description="Which contract it speaks: cnn, clip, blip2, whisper, llm, detector "
                      "(or a test kind).")

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"service url {url!r} must start with http:// or https://")
        return url.rstrip("/")


def default_services() -> dict[str, ServiceEndpoint]:
    return {name: ServiceEndpoint(url=f"http://127.0.0.1:{spec.port}", kind=name) for name, spec in SERVICES.items()}


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8000
    services: dict[str, ServiceEndpoint] = Field(
        default_factory=default_services,
        description='JSON map name → {"url", "kind"}; several of one kind are fine (cnn_fast, cnn_accurate).',
    )
    budget_bytes: int = Field(default=6 * GIB, gt=0, description="Memory the loaded models may use together.")
    headroom_bytes: int = Field(
        default=512 * 1024**2, ge=0, description="Kept free for activations during inference. Where NVML measures "
        "the services (a GPU), each process's CUDA context is counted in its own figure; without NVML the "
        "headroom must also cover the contexts, one per service process that has touched the GPU.",
    )
    reconcile_margin_bytes: int = Field(
        default=256 * 1024**2, ge=0, description="When the GPU's used memory (NVML) and the budget's accounting "
        "differ by more, /v1/models and /v1/health say so (another program is using the card, or a figure is off).",
    )
    pinned: list[str] = Field(default_factory=list, description="Loaded at start, never evicted.")
    priorities: dict[str, int] = Field(default_factory=dict, description="Lower is evicted first; default 0.")
    idle_ttl_s: float | None = Field(
        default=600.0, gt=0, description="Unload a model idle this long; unset: never."
    )
    idle_ttl_by_model: dict[str, PositiveFloat | None] = Field(
        default_factory=dict, description='JSON map service → its own idle time-to-live in seconds (null: never), '
        'overriding GATEWAY_IDLE_TTL_S for that model: {"llm": 120, "cnn": null}.',
    )
    max_keep_alive_s: float | None = Field(
        default=None, ge=0, description="Cap on a request's `keep_alive` (X-Keep-Alive header, classify's "
        "`keep_alive`); -1 (forever) and longer values become this; unset: no cap.",
    )
    room_timeout_s: float = Field(default=30.0, gt=0, description="How long a request waits for memory before 503.")
    load_timeout_s: float = Field(default=600.0, gt=0, description="How long one model load may take.")
    request_timeout_s: float = Field(default=300.0, gt=0, description="How long a proxied task call may take.")
    poll_interval_s: float = Field(default=5.0, gt=0, description="Health polling of the services.")
    retry_after_s: int = Field(default=5, ge=1)
    device_budgets: dict[str, int] = Field(
        default_factory=dict, description='JSON map device → its budget in bytes, for devices whose memory differs '
        'from GATEWAY_BUDGET_BYTES (the headroom is kept on each). A device is named as /v1/models shows it: '
        '"<node>/<GPU UUID>", or "<node>/cpu": {"gpu1/GPU-8f3c…": 24000000000}.',
    )
    lease_ttl_s: float = Field(
        default=15.0, gt=0, description="How long the budget ledger keeps a reservation of a gateway that stopped "
        "renewing it (it died); a live gateway renews every third of this.",
    )
    use_linger_s: float = Field(
        default=1.0, ge=0, description="How long the budget ledger keeps counting this gateway's use of a model "
        "after its last request: requests within it skip the ledger's two Redis round trips, and another gateway "
        "cannot unload the model meanwhile (this one can, at once). 0: every request counts itself.",
    )
    max_upload_bytes: int = Field(
        default=2 * GIB, gt=0, description="Largest upload to POST /v1/media (streamed to disk, never held whole)."
    )
    max_in_memory_bytes: int = Field(
        default=100 * 1024**2, gt=0, description="Largest body of every other request, and largest image or JSON "
        "upload (those are decoded whole).",
    )
    max_image_pixels: int = Field(default=40_000_000, gt=0, description="Larger images are refused (413).")
    cascade_config: Path | None = Field(default=None, description="JSON file with the cascade configuration.")
    storage_enabled: bool = Field(
        default=True, description="Media, jobs, search and clusters with Postgres + Redis; false: a models-only "
        "gateway whose media/search/cluster routes answer 503.",
    )
    migrate_on_start: bool = Field(default=True, description="Run `alembic upgrade head` at start-up.")
    job_max_attempts: int = Field(default=4, ge=1, description="Deliveries before a job ends `failed`.")
    search_ef: int = Field(default=100, ge=10, le=1000,
                           description="hnsw.ef_search for nearest-neighbour queries (pgvector allows at most 1000).")
    search_min_similarity: float = Field(
        default=0.2, ge=-1, le=1, description="A text query's image hits below this cosine similarity are dropped. "
        "Calibrated for CLIP ViT-B/32, whose text-image similarities are about 0.25-0.35 for a match and "
        "0.1-0.18 for an unrelated image; a request's `min_similarity` overrides it. No floor for random test "
        "weights (`tiny-random/…`), whose similarities mean nothing.",
    )
    search_min_similarity_by_model: dict[str, float] = Field(
        default_factory=dict, description='JSON map CLIP model name (as /v1/embed answers it) → its floor, for a '
        'model calibrated otherwise: {"clip-vit-large-patch14": 0.18}.',
    )
    search_weight_embedding: float = Field(default=1.0, ge=0, description="Fusion weight of the image-embedding list.")
    search_weight_transcript: float = Field(default=1.5, ge=0, description="Fusion weight of the transcript list.")
    search_weight_caption: float = Field(default=1.5, ge=0, description="Fusion weight of the caption list.")
    search_rrf_k: float = Field(
        default=60.0, gt=0, description="Reciprocal-rank fusion constant: an item scores weight / (k + rank) per list."
    )
    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    access: GatewayAccess = Field(default_factory=GatewayAccess)

    @field_validator("services", mode="before")
    @classmethod
    def _plain_urls(cls, services: object) -> object:
        """`{"cnn": "http://…"}` is short for `{"cnn": {"url": "http://…", "kind": "cnn"}}`."""
        if isinstance(services, dict):
            return {name: {"url": v, "kind": name} if isinstance(v, str) else v for name, v in services.items()}
        return services

    @property
    def api_key(self) -> SecretStr | None:
        """GATEWAY_API_KEY: when set, every endpoint but health and metrics needs it."""
        return self.access.api_key

    @property
    def fusion_weights(self) -> FusionWeights:
        return FusionWeights(embedding=self.search_weight_embedding, transcript=self.search_weight_transcript,
                             caption=self.search_weight_caption, k=self.search_rrf_k)

    def min_similarity_for(self, model: str) -> float | None:
        if model in self.search_min_similarity_by_model:
            return self.search_min_similarity_by_model[model]
        return None if model.startswith("tiny-random/") else self.search_min_similarity

    @property
    def usable_budget_bytes(self) -> int:
        return self.budget_bytes - self.headroom_bytes

    @property
    def usable_device_budgets(self) -> dict[str, int]:
        return {device: budget - self.headroom_bytes for device, budget in self.device_budgets.items()}

    @property
    def ledger_namespace(self) -> str:
        """The ledger's Redis keys sit beside the job stream's, so meshes sharing one Redis stay apart."""
        return f"{self.connections.queue_name}:ledger"

    @model_validator(mode="after")
    def _check_names(self) -> GatewaySettings:
        if self.usable_budget_bytes <= 0:
            raise ValueError(
                f"headroom ({self.headroom_bytes:,} B) leaves no budget of {self.budget_bytes:,} B; lower it"
            )
        for device, budget in self.usable_device_budgets.items():
            if budget <= 0:
                raise ValueError(f"GATEWAY_DEVICE_BUDGETS: headroom ({self.headroom_bytes:,} B) leaves no budget of "
                                 f"device {device!r}; raise its budget or lower the headroom")
        for what, names in (("pinned", self.pinned), ("priorities", list(self.priorities)),
                            ("idle_ttl_by_model", list(self.idle_ttl_by_model))):
            unknown = sorted(set(names) - set(self.services))
            if unknown:
                raise ValueError(f"GATEWAY_{what.upper()} names unknown service(s) {unknown}; "
                                 f"known: {sorted(self.services)}")
        return self
