"""Model calls through the gateway: the proxy `/v1/services/{name}/{path}` and the cascade `/v1/classify`."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from shared.http.errors import error_detail

log = logging.getLogger(__name__)


class StageFailed(Exception):
    """A model stage could not run (service down, busy past our patience, or it refused the input)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = f"{service}: {reason}"


class GatewayUnreachable(Exception):
    """The gateway itself is not answering: not one model's fault, so the whole job is retried later
    (with backoff) instead of storing an item degraded in every stage."""


class ModelClient:
    def __init__(self, gateway_url: str, timeout_s: float = 300.0, busy_retries: int = 2,
                 api_key: str | None = None, gateway_wait_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=gateway_url.rstrip("/"), timeout=timeout_s, headers=headers,
                                 transport=transport)
        self.busy_retries = busy_retries
        self.gateway_wait_s = gateway_wait_s

    def call(self, service: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._post(service, f"/v1/services/{service}/{path.lstrip('/')}", payload)

    def classify(self, image_b64: str) -> dict[str, Any]:
        return self._post("cascade", "/v1/classify", {"image": image_b64})

    def _send(self, url: str, payload: dict[str, Any]) -> httpx.Response:
        """POST, riding out a gateway restart for up to `gateway_wait_s` (connection refused only)."""
        deadline, pause = time.monotonic() + self.gateway_wait_s, 0.2
        while True:
            try:
                return self.http.post(url, json=payload)
            except httpx.ConnectError as exc:
                if time.monotonic() + pause > deadline:
                    raise GatewayUnreachable(f"the gateway at {self.http.base_url} is not answering: {exc}") from exc
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _post(self, service: str, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.busy_retries + 1):
            try:
                response = self._send(url, payload)
            except httpx.HTTPError as exc:  # e.g. a timeout: the model hung, the gateway is fine
                raise StageFailed(service, f"no answer through the gateway ({type(exc).__name__}: {exc})") from exc
            if response.status_code == 503 and "retry-after" in response.headers and attempt < self.busy_retries:
                # The memory budget is busy: wait as told (bounded), then try again before degrading.
                time.sleep(min(10.0, float(response.headers["retry-after"] or 1)))
                continue
            if response.is_success:
                return response.json()
            raise StageFailed(service, f"HTTP {response.status_code}: {error_detail(response.content, limit=300)}")
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.http.close()

