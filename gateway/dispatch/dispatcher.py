"""Calls to a model service's task endpoints, always behind the memory budget.

The proxy route and the cascade both go through here: hold the model (loading it and making
room if needed), send, release. A service that answers "not loaded" although the gateway
thought it loaded has restarted: re-read its state and try once more.

Task calls use aiohttp rather than the registry's httpx client: it costs about a quarter of the
CPU per request (0.2 vs 0.8 ms here), and the gateway sits in front of every model call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated

import aiohttp
from fastapi import Depends, Request
from yarl import URL

from gateway.dispatch.target import upstream_path, upstream_query
from gateway.scheduler.directory import ServiceRegistry
from gateway.scheduler.lifecycle_client import ServiceDown
from shared.http.errors import BadInput, ServiceError, error_detail

FORWARD_REQUEST_HEADERS = ("content-type", "accept", "accept-language")
KEEP_ALIVE_HEADER = "x-keep-alive"
DROP_RESPONSE_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"}


class UpstreamError(ServiceError):
    """A service's own 4xx/5xx, passed on with its status and message."""

    def __init__(self, name: str, status_code: int, detail: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"{name}: {detail}", headers={k: v for k, v in headers.items() if k.lower() == "retry-after"})
        self.status_code = status_code


@dataclass
class Upstream:
    """An answer from a service whose model is still held until `close()`."""

    response: aiohttp.ClientResponse
    release: Release

    @property
    def status_code(self) -> int:
        return self.response.status

    @property
    def content_type(self) -> str:
        return self.response.headers.get("content-type", "")

    @property
    def headers(self) -> dict[str, str]:
        return {k: v for k, v in self.response.headers.items() if k.lower() not in DROP_RESPONSE_HEADERS}

    async def body(self) -> bytes:
        try:
            return await self.response.read()
        finally:
            await self.close()

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        finally:
            await self.close()

    async def close(self) -> None:
        self.response.release()
        await self.release()


@dataclass(frozen=True)
class Target:
    method: str
    path: str  # percent-encoded, checked by `upstream_path`
    query: str


def keep_alive_header(headers: Mapping[str, str]) -> float | None:
    """`X-Keep-Alive: 0|-1|<seconds>` as Ollama's `keep_alive`; 422 on anything else."""
    raw = next((v for k, v in headers.items() if k.lower() == KEEP_ALIVE_HEADER), None)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise BadInput(f"X-Keep-Alive must be a number of seconds (0 unloads after the request, -1 keeps the "
                       f"model loaded), got {raw[:40]!r}")
    return value


class Release:
    def __init__(
        self, dispatcher: ServiceDispatcher, name: str, *, held: bool = True, keep_alive_s: float | None = None
    ) -> None:
        self.dispatcher, self.name, self.done, self.keep_alive_s = dispatcher, name, not held, keep_alive_s

    async def __call__(self) -> None:
        if not self.done:
            self.done = True
            await self.dispatcher.registry.budget.release(self.name, self.keep_alive_s)


class ServiceDispatcher:
    def __init__(self, registry: ServiceRegistry) -> None:
        self.registry = registry
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running event loop; one keep-alive pool for all services."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # idle connections are dropped before uvicorn's own 5 s keep-alive closes them under us
                connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=2.0),
                timeout=aiohttp.ClientTimeout(total=self.registry.settings.request_timeout_s, sock_connect=5.0),
                cookie_jar=aiohttp.DummyCookieJar(),  # never carry one caller's cookies to the next
                auto_decompress=False,  # bodies pass through as the service sent them
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def open(
        self, name: str, path: str, *, content: bytes, headers: Mapping[str, str], query: str = "",
        method: str = "POST", keep_alive_s: float | None = None,
    ) -> Upstream:
        """Send one task call; the caller must read or close the answer (that releases the model).

        Only a configured service name gets through (404 naming the known ones), and the path and
        query are checked (400) before the model is held or anything is sent. A GET reads a
        service's state (`/v1/model`, OpenAI's `/v1/models`) and runs no model: it holds none.
        `keep_alive_s` (else the X-Keep-Alive header) is how long the model stays loaded after.
        """
        record = self.registry.record(name)
        target = Target(method, upstream_path(path), upstream_query(query))
        keep_alive_s = keep_alive_s if keep_alive_s is not None else keep_alive_header(headers)
        if method == "GET":
            return await self._send(name, target, content, headers, Release(self, name, held=False))
        if not record.up:
            await self.registry.refresh(name)  # its estimate is needed before the first load
        for attempt in range(2):
            await self.registry.budget.acquire(name)
            release = Release(self, name, keep_alive_s=keep_alive_s)
            upstream = await self._send(name, target, content, headers, release)
            if upstream.status_code != 503 or attempt == 1:
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
        self, name: str, target: Target, content: bytes, headers: Mapping[str, str], release: Release
    ) -> Upstream:
        query = f"?{target.query}" if target.query else ""
        url = URL(self.registry.url(name, target.path) + query, encoded=True)
        forwarded = {k: v for k, v in headers.items() if k.lower() in FORWARD_REQUEST_HEADERS}
        try:
            response = await self.session.request(target.method, url, data=content, headers=forwarded)
        except (aiohttp.ClientError, TimeoutError) as exc:
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

    async def post_json(
        self, name: str, path: str, payload: object, *, keep_alive_s: float | None = None
    ) -> dict[str, object]:
        """For the gateway's own calls (cascade, search): JSON in, JSON out, every failure a `ServiceError`."""
        upstream = await self.open(
            name, path, content=json.dumps(payload).encode(), headers={"content-type": "application/json"},
            keep_alive_s=keep_alive_s,
        )
        try:
            body = await upstream.body()
        except (aiohttp.ClientError, TimeoutError) as exc:  # the service went away mid-answer
            raise ServiceDown(name, self.registry.record(name).endpoint.url, exc) from exc
        if upstream.status_code >= 400:
            raise UpstreamError(name, upstream.status_code, error_detail(body), upstream.headers)
        answer: dict[str, object] = json.loads(body)
        return answer



# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request
async def get_dispatcher(request: Request) -> ServiceDispatcher:
    dispatcher: ServiceDispatcher = request.app.state.dispatcher
    return dispatcher


DispatcherDep = Annotated[ServiceDispatcher, Depends(get_dispatcher)]
