"""Settings models that several processes share; each process builds its one settings class from them.

Every environment variable is read by exactly one class: `MEDIAMESH_HOME` here in `HomeSettings`,
`DATABASE_URL`/`REDIS_URL`/`MEDIAMESH_QUEUE`/`MEDIAMESH_MEDIA_DIR` in `ConnectionSettings`, and
`GATEWAY_URL`/`GATEWAY_API_KEY` in `GatewayAccess`, `MEDIAMESH_NODE` in `NodeSettings`; a process nests these
as fields of its own class.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
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

    @property
    def heads_dir(self) -> Path:
        """Trained CLIP heads: `mediamesh train-head` writes them, the clip service serves them."""
        return self.home / "heads"


def mediamesh_home() -> Path:
    return HomeSettings().home.expanduser()


class ConnectionSettings(BaseSettings):
    """What every process of one mesh must agree on: the servers, the queue, the media folder.

    Read unprefixed; unset URLs mean "start the embedded server" under MEDIAMESH_HOME (shared/embedded.py).
    """

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"),
                                     description="Postgres with pgvector; unset: the embedded one.")
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"),
                                  description="Redis of the job queue; unset: the embedded one.")
    queue_name: str = Field(
        default="mediamesh:jobs", validation_alias=AliasChoices("MEDIAMESH_QUEUE"),
        description="Redis key prefix of the job stream; gateway and worker must agree.",
    )
    media_dir: Path | None = Field(
        default=None, validation_alias=AliasChoices("MEDIAMESH_MEDIA_DIR"),
        description="Content-addressed media files; default MEDIAMESH_HOME/media.",
    )

    def resolved_media_dir(self) -> Path:
        return (self.media_dir or mediamesh_home() / "media").expanduser()


class GatewayAccess(BaseSettings):
    """How a client reaches the gateway, and the API key the gateway requires (the same key on both sides)."""

    model_config = SettingsConfigDict(extra="ignore")

    url: str = Field(default="http://127.0.0.1:8000", validation_alias=AliasChoices("GATEWAY_URL"),
                     description="The gateway, for the worker and the `mediamesh` command.")
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GATEWAY_API_KEY"),
        description="When set, the gateway requires it (`Authorization: Bearer`) on every endpoint but "
        "health and metrics, and its clients send it.",
    )

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"} if self.api_key else {}


# `<P>UNLOAD_MODE=restart`: a service's process ends with this code once unloaded; the launcher restarts it at
# once (without counting a crash), compose's restart policy does too. 75 is EX_TEMPFAIL: "try again".
RESTART_EXIT_CODE = 75


class NodeSettings(BaseSettings):
    """The machine a model service runs on: the gateways keep one memory budget per device of each node."""

    model_config = SettingsConfigDict(extra="ignore")

    name: str = Field(default_factory=socket.gethostname, validation_alias=AliasChoices("MEDIAMESH_NODE"),
                      description="The machine's name in the per-device budgets (`<node>/<GPU UUID>`); default the "
                      "host name. In Kubernetes, the node's name (the chart sets it).")


class ServiceSettings(BaseSettings):
    """The settings every model service reads. A service's class adds the mixins it uses
    (`ImageInputSettings`, `BatchSettings`, `QuantizationSettings`) and sets `env_prefix` (e.g. `CNN_`),
    so that every variable a service accepts is one it acts on."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_", env_nested_delimiter="__", extra="ignore")

    name: str = "model"
    host: str = "127.0.0.1"
    port: int = 8000
    model_path: Path | None = Field(
        default=None, description="Folder or file of the model; default MEDIAMESH_HOME/models/<name>."
    )
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
                        description="auto: CUDA when there is one; cuda:<index> picks one GPU of several.")
    node: NodeSettings = Field(default_factory=lambda: NodeSettings())
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="auto: float16 on CUDA, float32 on the CPU."
    )
    cuda_memory_fraction: float | None = Field(
        default=None, gt=0, le=1, description="Cap this process's share of the GPU (torch per-process fraction)."
    )
    autoload: bool = Field(default=False, description="Load the model at start-up and on the first task call.")
    max_request_bytes: int = Field(default=25 * 1024 * 1024, ge=1, description="Larger request bodies get 413.")
    inference_threads: int = Field(default=1, ge=1, description="Threads that run blocking inference.")
    torch_threads: int | None = Field(
        default=None, ge=1, description="Torch CPU threads (intra-op) of the process; unset: torch's default, one "
        "per core. 1 keeps CPU inference steady when other work shares the cores.")
    unload_mode: Literal["release", "restart"] = Field(
        default="release", description="release: unload frees the weights, the process keeps its CUDA context; "
        "restart: unload drains, then ends the process, which the launcher (or compose) starts again empty.",
    )
    inference_limit_s: float | None = Field(
        default=None, gt=0, description="An inference running longer is reported (log, metric, /health degraded); "
        "unset: no limit.",
    )

    def resolved_model_path(self) -> Path:
        if self.model_path is not None:
            return self.model_path.expanduser()
        return HomeSettings().models_dir.expanduser() / self.name


class ImageInputSettings(ServiceSettings):
    """For services that decode images."""

    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="Larger images get 413 (decompression bombs)."
    )


class BatchSettings(ServiceSettings):
    """For services whose tasks go through the kit's dynamic batcher."""

    max_batch_size: int = Field(default=16, ge=1, description="Most items in one batch; 1 turns batching off.")
    batch_timeout_ms: float = Field(
        default=5.0, ge=0, description="Longest wait for a batch to fill after its first item arrives."
    )
    max_queue: int = Field(
        default=1024, ge=1, description="Most items waiting for a batch; a request that would pass it gets 503 "
        "with Retry-After instead of queueing without limit.",
    )


class QuantizationSettings(ServiceSettings):
    """For Hugging Face models loaded through bitsandbytes (8-bit / 4-bit, CUDA only)."""

    quantization: Literal["none", "8bit", "4bit"] = Field(
        default="none", description="none, or 8bit / 4bit through bitsandbytes (CUDA only)."
    )
