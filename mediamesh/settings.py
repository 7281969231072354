"""The `mediamesh` command's one settings object, assembled from the shared models and its own parts.

Each environment variable is read by one class: `MEDIAMESH_HOME` by `HomeSettings`, `DATABASE_URL` and
`REDIS_URL` by `ConnectionSettings`, `GATEWAY_URL` and `GATEWAY_API_KEY` by `GatewayAccess`,
`MEDIAMESH_UP_*` by `LauncherSettings` and the hub's variables by `HubSettings`.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.catalog import SERVICES
from shared.client import GatewayClient
from shared.config import ConnectionSettings, GatewayAccess, HomeSettings


class LauncherSettings(BaseSettings):
    """`MEDIAMESH_UP_*` tune the supervisor (the `mediamesh up` options override them)."""

    model_config = SettingsConfigDict(env_prefix="MEDIAMESH_UP_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface every process listens on.")
    health_timeout_s: float = Field(default=180.0, gt=0, description="How long to wait for every process to be up.")
    stop_timeout_s: float = Field(default=10.0, gt=0, description="SIGTERM grace period before SIGKILL.")
    max_restarts: int = Field(default=3, ge=0, description="Restarts of a child that dies before giving up on it.")


class HubSettings(BaseSettings):
    """`MEDIAMESH_<SERVICE>_MODEL_ID` picks the hub repository of each service (defaults: the brief's models)."""

    model_config = SettingsConfigDict(env_prefix="MEDIAMESH_", extra="ignore")

    cnn_model_id: str = SERVICES["cnn"].hub_id
    clip_model_id: str = SERVICES["clip"].hub_id
    blip2_model_id: str = SERVICES["blip2"].hub_id
    whisper_model_id: str = SERVICES["whisper"].hub_id
    llm_model_id: str = SERVICES["llm"].hub_id
    detector_model_id: str = SERVICES["detector"].hub_id
    hub_endpoint: str = Field(default="https://huggingface.co", validation_alias=AliasChoices("HF_ENDPOINT"))
    hub_offline: bool = Field(default=False, validation_alias=AliasChoices("HF_HUB_OFFLINE"))
    hub_timeout_s: float = Field(default=5.0, gt=0, description="Connect/read timeout of the reachability check.")

    def model_id(self, service: str) -> str:
        return str(getattr(self, f"{service}_model_id"))


class CommandSettings(BaseModel):
    """Everything the command reads from the environment (its options override it)."""

    home: HomeSettings = Field(default_factory=HomeSettings)
    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)
    gateway: GatewayAccess = Field(default_factory=GatewayAccess)
    launcher: LauncherSettings = Field(default_factory=LauncherSettings)
    hub: HubSettings = Field(default_factory=HubSettings)

    def gateway_client(self, url: str | None = None, timeout_s: float = 300.0) -> GatewayClient:
        """The gateway client: `url` (a `--url` option) or GATEWAY_URL, with GATEWAY_API_KEY."""
        key = self.gateway.api_key
        return GatewayClient(url or self.gateway.url, key.get_secret_value() if key else None, timeout_s)
