"""A small client of the gateway's HTTP API, for the command line (and anyone scripting it)."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.http.errors import error_detail


class ClientSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    gateway_url: str = Field(default="http://127.0.0.1:8000", validation_alias=AliasChoices("GATEWAY_URL"))
    api_key: str | None = Field(default=None, validation_alias=AliasChoices("GATEWAY_API_KEY"))


class GatewayError(RuntimeError):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"gateway answered {status_code}: {detail}")
        self.status_code, self.detail = status_code, detail


class GatewayClient:
    def __init__(self, url: str | None = None, api_key: str | None = None, timeout_s: float = 300.0) -> None:
        settings = ClientSettings()
        key = api_key or settings.api_key
        self.http = httpx.Client(base_url=(url or settings.gateway_url).rstrip("/"), timeout=timeout_s,
                                 headers={"Authorization": f"Bearer {key}"} if key else {})

    def call(self, service: str, path: str, json: Any) -> Any:
        """A model service's task endpoint through the gateway's scheduler."""
        return self.request("POST", f"/v1/services/{service}/{path.lstrip('/')}", json=json)

    def classify_file(self, data: bytes, filename: str, *, mode: str = "auto", variant: str | None = None) -> Any:
        form = {"mode": mode} | ({"variant": variant} if variant else {})
        return self.request("POST", "/v1/classify/upload", files={"file": (filename, data)}, data=form)

    def cascade_config(self) -> Any:
        return self.request("GET", "/v1/cascade/config")

    def put_cascade_config(self, config: Any) -> Any:
        return self.request("PUT", "/v1/cascade/config", json=config)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(0, f"cannot reach the gateway at {self.http.base_url} ({exc}); is it running?") from exc
        if answer.status_code >= 400:
            raise GatewayError(answer.status_code, error_detail(answer.content))
        return answer.json()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
