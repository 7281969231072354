"""Calls to a model service's task endpoints, always behind the memory budget.

The proxy route and the cascade both go through here: hold the model (loading it and making
room if needed), send, release. A service that answers "not loaded" although the gateway
thought it loaded has restarted: re-read its state and try once more.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import httpx

from gateway.registry import ServiceDown, ServiceRegistry, _detail
from shared.errors import ServiceError

FORWARD_REQUEST_HEADERS = ("content-type", "accept", "accept-language")
DROP_RESPONSE_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"}


class UpstreamError(ServiceError):
    """A service's own 4xx/5xx, passed on with its status and message."""

    def __init__(self, name: str, status_code: int, detail: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"{name}: {detail}", headers={k: v for k, v in headers.items() if k == "retry-after"})
        self.status_code = status_code


@dataclass
class Upstream:
    """An answer from a service whose model is still held until `close()`."""

    response: httpx.Response
    release: Release

    @property
    def headers(self) -> dict[str, str]:
        return {k: v for k, v in self.response.headers.items() if k.lower() not in DROP_RESPONSE_HEADERS}

    async def body(self) -> bytes:
        try:
            return b"".join([chunk async for chunk in self.response.aiter_raw()])
        finally:
            await self.close()

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_raw():
                yield chunk
        finally:
            await self.close()

    async def close(self) -> None:
        await self.response.aclose()
        await self.release()


class Release:
    def __init__(self, dispatcher: ServiceDispatcher, name: str) -> None:
        self.dispatcher, self.name, self.done = dispatcher, name, False

    async def __call__(self) -> None:
        if not self.done:
            self.done = True
            await self.dispatcher.registry.budget.release(self.name)


class ServiceDispatcher:
    def __init__(self, registry: ServiceRegistry) -> None:
        self.registry = registry
        self.timeout = httpx.Timeout(registry.settings.request_timeout_s, connect=5.0).as_dict()

    async def open(
        self, name: str, path: str, *, content: bytes, headers: Mapping[str, str], query: str = ""
    ) -> Upstream:
        """Send one task call; the caller must read or close the answer (that releases the model)."""
        record = self.registry.record(name)  # 404 naming the known services
        if not record.up:
            await self.registry.refresh(name)  # its estimate is needed before the first load
        for attempt in range(2):
            await self.registry.budget.acquire(name)
            release = Release(self, name)
            upstream = await self._send(name, path, content, headers, query, release)
            if upstream.response.status_code != 503 or attempt == 1:
                return upstream
            try:
                restarted = await self._restarted(name)
            except BaseException:
                await asyncio.shield(upstream.close())
                raise
            if not restarted:
                return upstream
            await upstream.close()
        raise AssertionError("unreachable")

    async def _send(
        self, name: str, path: str, content: bytes, headers: Mapping[str, str], query: str, release: Release
    ) -> Upstream:
        url = self.registry.url(name, path) + (f"?{query}" if query else "")
        forwarded = {k: v for k, v in headers.items() if k.lower() in FORWARD_REQUEST_HEADERS}
        # a bare Request, not client.build_request: no merging of client URL, params or cookies per call
        request = httpx.Request("POST", url, content=content, headers=forwarded,
                                extensions={"timeout": self.timeout})
        try:
            response = await self.registry.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await release()
            await self.registry.refresh(name)
            raise ServiceDown(name, self.registry.record(name).endpoint.url, exc) from exc
        except BaseException:  # cancelled (the caller went away): never leave the model held
            await asyncio.shield(release())
            raise
        return Upstream(response, release)

    async def _restarted(self, name: str) -> bool:
        record = await self.registry.refresh(name)
        return record.up and record.info is not None and record.info.state.value != "loaded"

    async def post_json(self, name: str, path: str, payload: object) -> dict[str, object]:
        """For the gateway's own calls (the cascade): JSON in, JSON out, service errors raised."""
        import json

        upstream = await self.open(
            name, path, content=json.dumps(payload).encode(), headers={"content-type": "application/json"}
        )
        body = await upstream.body()
        if upstream.response.status_code >= 400:
            raise UpstreamError(name, upstream.response.status_code, _detail_bytes(body), upstream.response.headers)
        return httpx.Response(200, content=body).json()


def _detail_bytes(body: bytes) -> str:
    return _detail(httpx.Response(500, content=body))
