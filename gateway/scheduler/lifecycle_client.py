"""The services' lifecycle endpoints over HTTP: `GET /v1/model`, `POST /v1/model/load|unload`.

One keep-alive httpx client for these control calls; task calls go through the dispatcher.
"""

from __future__ import annotations

import httpx

from shared.http.errors import ServiceError, error_detail
from shared.schemas.model import LoadResult, ModelInfo, UnloadResult

INFO_TIMEOUT_S = 5.0


class ServiceDown(ServiceError):
    """The service could not be reached at all (502: the gateway is fine, its upstream is not)."""

    status_code = 502

    def __init__(self, name: str, url: str, exc: Exception) -> None:
        super().__init__(
            f"service '{name}' at {url} is not reachable ({type(exc).__name__}); "
            "check that it runs (GET /v1/health shows every service)",
            headers={"Retry-After": "5"},
        )


class LifecycleClient:
    def __init__(self, request_timeout_s: float, load_timeout_s: float,
                 client: httpx.AsyncClient | None = None) -> None:
        self.load_timeout_s = load_timeout_s
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout_s, connect=5.0),
            # idle connections are dropped before uvicorn's own 5 s keep-alive closes them under us
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0),
        )

    async def model_info(self, base_url: str) -> ModelInfo:
        """The service's `/v1/model`; raises `httpx.HTTPError` or `ValueError` when it cannot be read."""
        answer = await self.client.get(f"{base_url}/v1/model", timeout=INFO_TIMEOUT_S)
        answer.raise_for_status()
        return ModelInfo.model_validate(answer.json())

    async def load(self, name: str, base_url: str) -> int:
        """Load the model; its measured footprint in bytes: the process's whole GPU use where NVML measures it
        (CUDA context and libraries torch cannot see included), else the allocator's figure."""
        answer = LoadResult.model_validate(await self._call(name, base_url, "/v1/model/load"))
        return answer.device_bytes if answer.device_bytes is not None else answer.memory_bytes

    async def unload(self, name: str, base_url: str) -> UnloadResult:
        return UnloadResult.model_validate(await self._call(name, base_url, "/v1/model/unload"))

    async def _call(self, name: str, base_url: str, path: str) -> dict[str, object]:
        for attempt in range(2):  # load and unload are idempotent: a dropped connection is retried once
            try:
                answer = await self.client.post(base_url + path, timeout=self.load_timeout_s)
                break
            except (httpx.RemoteProtocolError, httpx.ConnectError) as exc:
                if attempt == 1:
                    raise ServiceDown(name, base_url, exc) from exc
            except httpx.HTTPError as exc:
                raise ServiceDown(name, base_url, exc) from exc
        if answer.status_code >= 400:
            raise ServiceError(
                f"service '{name}' answered {answer.status_code} to {path}: {error_detail(answer.content)}"
            )
        result: dict[str, object] = answer.json()
        return result

    async def close(self) -> None:
        await self.client.aclose()
