"""The floor under `gateway_overhead`: a bare ASGI app under uvicorn that passes each POST body to the
cnn service with the gateway's HTTP client (aiohttp, one keep-alive pool) and returns the answer.

No framework, scheduler, metrics or checks: what any Python hop in front of the service costs at least.
`uvicorn --factory bench.passthrough_floor:create_app` with `BENCH_FLOOR_UPSTREAM=<service URL>`.
"""

from __future__ import annotations

import os

import aiohttp
from starlette.types import Receive, Scope, Send


class PassThrough:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"] == "/health":
            await self._answer(send, 200, b"ok")
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        if self.session is None:  # created inside the running loop, as the gateway's dispatcher does
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=2.0),
                                                 auto_decompress=False)
        async with self.session.post(self.upstream + scope["path"], data=body,
                                     headers={"content-type": "application/json"}) as response:
            await self._answer(send, response.status, await response.read())

    async def _answer(self, send: Send, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> PassThrough:
    return PassThrough(os.environ["BENCH_FLOOR_UPSTREAM"])
