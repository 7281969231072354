"""API-key check as pure ASGI middleware (no per-request task, unlike `BaseHTTPMiddleware`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

# Liveness, health and metrics stay open: probes and Prometheus scrape without the key.
OPEN_PATHS = frozenset({"/health", "/v1/health", "/metrics"})
REFUSAL = b'{"detail":"missing or wrong API key; send Authorization: Bearer <key> or X-API-Key: <key>"}'


class ApiKeyGuard:
    """Every HTTP request but `open_paths` needs `Authorization: Bearer KEY` or `X-API-Key: KEY`; else 401."""

    def __init__(self, app: ASGIApp, api_key: str, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        self.app, self.key, self.open_paths = app, api_key.encode(), frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths or self._allowed(dict(scope["headers"])):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": REFUSAL})

    def _allowed(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"x-api-key") or headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
        return bool(given) and secrets.compare_digest(given, self.key)
